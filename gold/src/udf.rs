//! `money(x)` and `money_div(x, n)`: the contract's rounding of money to NUMERIC(18,2), half
//! away from zero, computed exactly on the decimal's integer representation (DataFusion's own
//! `round` goes through floating point for some types).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Decimal128Builder};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use deltalake::datafusion::common::{exec_err, Result};
use deltalake::datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// Money columns: NUMERIC(18,2).
pub const MONEY: DataType = DataType::Decimal128(18, 2);
const MAX_18: i128 = 999_999_999_999_999_999;

/// `value / divisor`, rounded half away from zero (divisor > 0).
fn div_round(value: i128, divisor: i128) -> i128 {
    let q = value / divisor;
    let r = value % divisor;
    if 2 * r.abs() >= divisor {
        q + value.signum()
    } else {
        q
    }
}

/// Rescales `v` from `scale` to 2 decimals, rounding half away from zero.
pub fn to_cents(v: i128, scale: i8) -> i128 {
    match scale {
        s if s > 2 => div_round(v, 10i128.pow((s - 2) as u32)),
        s => v * 10i128.pow((2 - s) as u32),
    }
}

/// A decimal argument as (array, scale); integers are decimals of scale 0.
fn decimal_arg(v: &ColumnarValue, rows: usize) -> Result<(Decimal128Array, i8)> {
    let a = v.to_array(rows)?;
    match a.data_type() {
        DataType::Decimal128(_, s) => Ok((a.as_primitive::<Decimal128Type>().clone(), *s)),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
            let c = arrow::compute::cast(&a, &DataType::Decimal128(38, 0))?;
            Ok((c.as_primitive::<Decimal128Type>().clone(), 0))
        }
        DataType::Null => Ok((Decimal128Array::new_null(rows), 2)),
        other => exec_err!("money: expected a decimal, got {other}"),
    }
}

fn finish(values: impl Iterator<Item = Option<i128>>, len: usize) -> Result<ColumnarValue> {
    let mut b = Decimal128Builder::with_capacity(len);
    for v in values {
        match v {
            Some(c) if c.abs() > MAX_18 => return exec_err!("money value {c} (in cents) exceeds NUMERIC(18,2)"),
            other => b.append_option(other),
        }
    }
    let arr: ArrayRef = Arc::new(b.finish().with_precision_and_scale(18, 2)?);
    Ok(ColumnarValue::Array(arr))
}

/// The two money functions: `money(x)` rounds an exact decimal to cents, `money_div(x, n)`
/// divides it by a count and rounds the exact quotient to cents.
#[derive(Debug, PartialEq, Eq, Hash)]
enum MoneyOp {
    Round,
    Div,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct MoneyFn {
    op: MoneyOp,
    signature: Signature,
}

impl ScalarUDFImpl for MoneyFn {
    fn name(&self) -> &str {
        match self.op {
            MoneyOp::Round => "money",
            MoneyOp::Div => "money_div",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(MONEY)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let (a, scale) = decimal_arg(&args.args[0], rows)?;
        if self.op == MoneyOp::Round {
            return finish(a.iter().map(|v| v.map(|v| to_cents(v, scale))), a.len());
        }
        let d = arrow::compute::cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let d = d.as_primitive::<Int64Type>();
        let values = a.iter().zip(d.iter()).map(|(v, n)| match (v, n) {
            (Some(v), Some(n)) if n != 0 => {
                // v / 10^scale / n in cents = v * 100 / (10^scale * n), computed exactly.
                let (num, den) = if scale >= 2 { (v, 10i128.pow((scale - 2) as u32) * n as i128) } else { (v * 10i128.pow((2 - scale) as u32), n as i128) };
                let (num, den) = if den < 0 { (-num, -den) } else { (num, den) };
                Some(div_round(num, den))
            }
            _ => None,
        });
        finish(values, a.len())
    }
}

pub fn money() -> ScalarUDF {
    ScalarUDF::new_from_impl(MoneyFn { op: MoneyOp::Round, signature: Signature::any(1, Volatility::Immutable) })
}

pub fn money_div() -> ScalarUDF {
    ScalarUDF::new_from_impl(MoneyFn { op: MoneyOp::Div, signature: Signature::any(2, Volatility::Immutable) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_away_from_zero() {
        assert_eq!(to_cents(12_345, 3), 1235); // 12.345 -> 12.35
        assert_eq!(to_cents(-12_345, 3), -1235); // -12.345 -> -12.35
        assert_eq!(to_cents(12_344_999, 6), 1234); // 12.344999 -> 12.34
        assert_eq!(to_cents(5, 3), 1); // 0.005 -> 0.01
        assert_eq!(to_cents(-5, 3), -1);
        assert_eq!(to_cents(4, 3), 0);
        assert_eq!(to_cents(7, 0), 700);
        assert_eq!(div_round(10, 4), 3); // 2.5 -> 3
        assert_eq!(div_round(-10, 4), -3);
        assert_eq!(div_round(9, 4), 2);
    }
}
