//! The feed contract (CONTRACT.md §1): datasets, their columns, key columns, required flags,
//! types and cleaning rules. This is the one definition every stage and the docs read.

use std::fmt;

/// The six feeds a partner can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataset {
    Products,
    Customers,
    Orders,
    OrderItems,
    Inventory,
    Campaigns,
}

impl Dataset {
    /// Every dataset, in the order of the contract.
    pub const ALL: [Dataset; 6] = [
        Dataset::Products,
        Dataset::Customers,
        Dataset::Orders,
        Dataset::OrderItems,
        Dataset::Inventory,
        Dataset::Campaigns,
    ];

    /// The name used in landing paths, lake paths and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Products => "products",
            Dataset::Customers => "customers",
            Dataset::Orders => "orders",
            Dataset::OrderItems => "order_items",
            Dataset::Inventory => "inventory",
            Dataset::Campaigns => "campaigns",
        }
    }

    /// Parses a dataset name exactly as written in the contract (lower case).
    pub fn parse(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The dataset's columns in contract order (the order that decides which reason a
    /// rejected row gets).
    pub fn columns(self) -> &'static [Column] {
        match self {
            Dataset::Products => PRODUCTS,
            Dataset::Customers => CUSTOMERS,
            Dataset::Orders => ORDERS,
            Dataset::OrderItems => ORDER_ITEMS,
            Dataset::Inventory => INVENTORY,
            Dataset::Campaigns => CAMPAIGNS,
        }
    }

    /// The columns identifying a record within a partner.
    pub fn key(self) -> &'static [&'static str] {
        match self {
            Dataset::Products => &["sku"],
            Dataset::Customers => &["customer_id"],
            Dataset::Orders => &["order_id"],
            Dataset::OrderItems => &["order_id", "line_number"],
            Dataset::Inventory => &["sku", "warehouse"],
            Dataset::Campaigns => &["campaign_id"],
        }
    }

    /// Inventory is a daily snapshot; every other dataset is an upsert by (partner, key).
    pub fn is_snapshot(self) -> bool {
        matches!(self, Dataset::Inventory)
    }

    /// Columns a feed's header must name, else the file is quarantined whole.
    pub fn required_columns(self) -> impl Iterator<Item = &'static Column> {
        self.columns().iter().filter(|c| c.required)
    }

    pub fn column(self, name: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.name == name)
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The value type of a column, after cleaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Trimmed, internal whitespace collapsed.
    String,
    /// Exact decimal: 14 integer digits, 4 fractional; `$`, `€`, `£` and `,` thousands groups.
    Money,
    /// Exact decimal with the same syntax as money.
    Decimal,
    /// Signed 64-bit integer, digits only.
    Int,
    /// `true/false`, `t/f`, `yes/no`, `y/n`, `1/0`.
    Bool,
    /// `YYYY-MM-DD`; a timestamp is accepted and keeps its UTC date.
    Date,
    /// RFC 3339 with its `Z` or offset, `YYYY-MM-DD HH:MM:SS` (UTC; no zone, no fraction) or a
    /// plain date (midnight UTC).
    Timestamp,
    /// Three letters, upper-cased; `USD` when absent.
    Currency,
    /// One of a fixed set of values, case-insensitive; the column carries its values.
    Enum(&'static EnumValues),
}

/// The values an enum column accepts and what each means: a parser works from the column.
#[derive(Debug, PartialEq, Eq)]
pub struct EnumValues {
    /// Every accepted spelling (lower case), canonical values and aliases, as documented.
    pub accepted: &'static [&'static str],
    /// Aliases and the canonical value each stands for (`canceled` → `cancelled`).
    pub canonical: &'static [(&'static str, &'static str)],
}

impl EnumValues {
    /// The canonical value of `s` (compared lower-cased), or `None` when it is not accepted.
    pub fn parse(&self, s: &str) -> Option<&'static str> {
        let lower = s.to_lowercase();
        let value = *self.accepted.iter().find(|v| **v == lower)?;
        Some(self.canonical.iter().find(|(alias, _)| *alias == value).map_or(value, |(_, canonical)| *canonical))
    }

    /// The canonical values (the accepted ones that are not aliases).
    pub fn values(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.accepted.iter().copied().filter(|v| !self.canonical.iter().any(|(alias, _)| alias == v))
    }
}

impl ColumnType {
    pub fn describe(self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Money => "money".into(),
            ColumnType::Decimal => "decimal".into(),
            ColumnType::Int => "int".into(),
            ColumnType::Bool => "bool".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Currency => "currency".into(),
            ColumnType::Enum(values) => format!("enum({})", values.accepted.join(", ")),
        }
    }
}

/// A cleaning or validation rule beyond the type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Upper,
    Lower,
    /// Each space-separated word: first letter upper-case, the rest lower-case.
    TitleCase,
    MaxLen(usize),
    /// Numeric lower bound (inclusive).
    Min(i64),
    /// Numeric upper bound (inclusive).
    Max(i64),
    /// Numeric lower bound (exclusive).
    GreaterThan(i64),
    /// Warn rule: lower-cased email must match `^[^@\s]+@[^@\s]+\.[^@\s]+$`, else `invalid_email`.
    EmailWarn,
    /// Warn rule: upper-cased, 2 letters A–Z, else `invalid_country`.
    CountryWarn,
    /// Must be on or after the named date column of the same row, else `invalid_range`.
    NotBefore(&'static str),
    /// Value used when the column is absent or null.
    Default(&'static str),
}

/// One column of a feed.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
    pub ty: ColumnType,
    pub rules: &'static [Rule],
    /// One-line meaning, used in the docs and in warehouse comments.
    pub doc: &'static str,
}

const fn col(name: &'static str, required: bool, ty: ColumnType, rules: &'static [Rule], doc: &'static str) -> Column {
    Column { name, required, ty, rules, doc }
}

use ColumnType as T;
use Rule as R;

/// Values accepted for `orders.status` (`canceled` is accepted and means `cancelled`).
pub const ORDER_STATUSES: &[&str] = &["pending", "completed", "cancelled", "canceled", "returned"];

/// `orders.status`: [`ORDER_STATUSES`], `canceled` meaning `cancelled`.
pub const ORDER_STATUS: EnumValues = EnumValues { accepted: ORDER_STATUSES, canonical: &[("canceled", "cancelled")] };

const PRODUCTS: &[Column] = &[
    col("sku", true, T::String, &[R::Upper, R::MaxLen(64)], "Partner's stock-keeping unit"),
    col("name", true, T::String, &[], "Product name"),
    col("category", true, T::String, &[R::TitleCase], "Product category"),
    col("brand", false, T::String, &[], "Brand"),
    col("price", true, T::Money, &[R::Min(0)], "Unit list price"),
    col("currency", false, T::Currency, &[R::Default("USD")], "ISO currency code"),
    col("quantity", false, T::Int, &[R::Min(0)], "Stock on hand"),
    col("updated_at", false, T::Timestamp, &[], "When the partner last changed the product (UTC)"),
];

const CUSTOMERS: &[Column] = &[
    col("customer_id", true, T::String, &[], "Partner's customer id"),
    col("email", false, T::String, &[R::Lower, R::EmailWarn], "Email address"),
    col("first_name", false, T::String, &[], "First name"),
    col("last_name", false, T::String, &[], "Last name"),
    col("country", false, T::String, &[R::Upper, R::CountryWarn], "ISO 3166 alpha-2 country code"),
    col("signup_date", false, T::Date, &[], "Signup date"),
];

const ORDERS: &[Column] = &[
    col("order_id", true, T::String, &[], "Partner's order id"),
    col("customer_id", true, T::String, &[], "Customer who placed the order"),
    col("order_date", true, T::Timestamp, &[], "When the order was placed; its UTC date is the business date"),
    col("status", true, T::Enum(&ORDER_STATUS), &[R::Lower], "pending, completed, cancelled or returned"),
    col("currency", false, T::Currency, &[R::Default("USD")], "ISO currency code of the order"),
    col("campaign_id", false, T::String, &[], "Campaign that brought the order"),
    col("total_amount", false, T::Money, &[], "Order total as sent (informational)"),
];

const ORDER_ITEMS: &[Column] = &[
    col("order_id", true, T::String, &[], "Order the line belongs to"),
    col("line_number", true, T::Int, &[R::Min(1)], "Line number within the order"),
    col("sku", true, T::String, &[R::Upper], "Product SKU"),
    col("quantity", true, T::Int, &[R::GreaterThan(0)], "Units ordered"),
    col("unit_price", true, T::Money, &[R::Min(0)], "Price per unit"),
    col("discount", false, T::Decimal, &[R::Min(0), R::Max(1), R::Default("0")], "Discount as a fraction of the line"),
    col("returned", false, T::Bool, &[R::Default("false")], "Whether the line was returned"),
];

const INVENTORY: &[Column] = &[
    col("sku", true, T::String, &[R::Upper], "Product SKU"),
    col("warehouse", true, T::String, &[], "Warehouse"),
    col("quantity_on_hand", true, T::Int, &[R::Min(0)], "Units on hand"),
    col("reorder_level", false, T::Int, &[R::Min(0), R::Default("0")], "Reorder threshold"),
];

const CAMPAIGNS: &[Column] = &[
    col("campaign_id", true, T::String, &[], "Partner's campaign id"),
    col("name", true, T::String, &[], "Campaign name"),
    col("channel", false, T::String, &[R::Lower], "Marketing channel"),
    col("start_date", true, T::Date, &[], "First day of the campaign"),
    col("end_date", false, T::Date, &[R::NotBefore("start_date")], "Last day of the campaign"),
    col("budget", false, T::Money, &[R::Min(0)], "Campaign budget"),
];

/// Contract columns with few distinct values: bronze dictionary-encodes these (and only
/// these, besides lineage constants), since building a dictionary for ids, names and amounts
/// costs more than it saves.
pub const LOW_CARDINALITY_COLUMNS: &[&str] =
    &["category", "brand", "currency", "status", "warehouse", "channel", "country", "discount", "returned", "campaign_id"];

/// Partner ids become path components: `^[a-z0-9][a-z0-9_-]{0,63}$`.
pub fn validate_partner_id(id: &str) -> Result<(), String> {
    let bytes = id.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid partner id {id:?}: partner ids must match ^[a-z0-9][a-z0-9_-]{{0,63}}$ (lower-case letters, digits, '_' and '-', at most 64 characters)"
        ))
    }
}

/// Longest lake form of a file name: the raw copy is stored under the name as lake paths
/// encode it ([`crate::paths::encode_segment`]: a non-ASCII or special byte takes 3 bytes), and
/// local filesystems cap one path component at 255 bytes.
pub const MAX_ENCODED_FILE_NAME: usize = 255;

/// Feed file names become one path component in the lake: no separators, no `.`/`..`,
/// no control characters (DEL included), at most 200 bytes, and at most 255 bytes once
/// percent-encoded for the lake.
pub fn validate_file_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 200
        || name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if bad {
        return Err(format!(
            "invalid feed file name {name:?}: a name must be one path component (no '/', '\\', control characters, '.' or '..'), at most 200 bytes"
        ));
    }
    let encoded = crate::paths::encode_segment(name).len();
    if encoded > MAX_ENCODED_FILE_NAME {
        return Err(format!(
            "invalid feed file name {name:?}: {encoded} bytes once percent-encoded for the lake (non-ASCII and special characters take 3 bytes each), at most {MAX_ENCODED_FILE_NAME}"
        ));
    }
    Ok(())
}

/// Run dates are `YYYY-MM-DD` (see [`crate::RunDate`], which callers should keep).
pub fn parse_run_date(s: &str) -> Result<crate::RunDate, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partner_ids() {
        for ok in ["acme", "a", "0-shop", "shop_1", &"a".repeat(64)] {
            assert!(validate_partner_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../evil", "Acme", "-x", "_x", "a/b", "a.b", "a b", &"a".repeat(65), "é"] {
            assert!(validate_partner_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names() {
        assert!(validate_file_name("orders_2026-11-20.csv").is_ok());
        for bad in ["", ".", "..", "a/b.csv", "..\\x", "a\nb", "a\tb.csv", "a\rb.csv", "a\u{7f}.csv", "a\0.csv"] {
            assert!(validate_file_name(bad).is_err(), "{bad:?}");
        }
        // 199 bytes of ASCII land; 199 bytes of two-byte characters would be 597 bytes on disk
        assert!(validate_file_name(&format!("{}.csv", "a".repeat(195))).is_ok());
        let long = format!("{}.csv", "é".repeat(97) + "x");
        assert_eq!(long.len(), 199);
        assert!(validate_file_name(&long).unwrap_err().contains("percent-encoded"));
        assert!(validate_file_name(&format!("{}.csv", "é".repeat(40))).is_ok(), "84 bytes, 244 encoded");
    }

    #[test]
    fn datasets_round_trip_and_have_keys() {
        for d in Dataset::ALL {
            assert_eq!(Dataset::parse(d.name()), Some(d));
            for k in d.key() {
                let c = d.column(k).expect("key column exists");
                assert!(c.required, "{d}.{k} is a key and must be required");
            }
        }
        assert_eq!(Dataset::parse("Products"), None);
        assert_eq!(Dataset::parse("unknown"), None);
    }

    #[test]
    fn run_dates() {
        assert!(parse_run_date("2026-11-20").is_ok());
        assert!(parse_run_date("2026-1-20").is_err());
        assert!(parse_run_date("2026-02-30").is_err());
    }

    #[test]
    fn enum_columns_carry_their_values() {
        let ColumnType::Enum(values) = Dataset::Orders.column("status").unwrap().ty else { panic!("status is an enum") };
        assert_eq!(values.parse("Canceled"), Some("cancelled"));
        assert_eq!(values.parse("COMPLETED"), Some("completed"));
        assert_eq!(values.parse("shipped"), None);
        assert_eq!(values.values().collect::<Vec<_>>(), ["pending", "completed", "cancelled", "returned"]);
        assert_eq!(ColumnType::Enum(values).describe(), "enum(pending, completed, cancelled, canceled, returned)");
    }
}

impl Rule {
    pub fn describe(&self) -> String {
        match self {
            Rule::Upper => "upper-cased".into(),
            Rule::Lower => "lower-cased".into(),
            Rule::TitleCase => "Title Case".into(),
            Rule::MaxLen(n) => format!("at most {n} characters"),
            Rule::Min(n) => format!("≥ {n}"),
            Rule::Max(n) => format!("≤ {n}"),
            Rule::GreaterThan(n) => format!("> {n}"),
            Rule::EmailWarn => "must look like an email, else warn `invalid_email` (value nulled)".into(),
            Rule::CountryWarn => "2 letters A–Z, else warn `invalid_country` (value nulled)".into(),
            Rule::NotBefore(c) => format!("≥ {c}, else reject `invalid_range`"),
            Rule::Default(v) => format!("default `{v}`"),
        }
    }
}

/// The feed contract as a Markdown document (`medallion contract`, `docs/feeds.md`).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Feed contract\n\nGenerated from `schemas/src/contract.rs` by `medallion contract`; do not edit by hand.\n\
         Required columns must be present in a feed's header (else the file is quarantined as\n\
         `missing_column`) and non-null and valid in every row (else the row is rejected as\n\
         `missing_<column>` or `invalid_<column>`). Every value is trimmed first; empty values are null.\n",
    );
    for d in Dataset::ALL {
        out.push_str(&format!(
            "\n## {d}\n\nKey: {} per partner; {}.\n\n| column | required | type | rules | meaning |\n|---|---|---|---|---|\n",
            d.key().join(" + "),
            if d.is_snapshot() { "a snapshot per (partner, run date): the day's latest file replaces earlier ones" } else { "upserted: the newest version wins" }
        ));
        for c in d.columns() {
            let rules: Vec<String> = c.rules.iter().map(Rule::describe).collect();
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                c.name,
                if c.required { "yes" } else { "" },
                c.ty.describe(),
                rules.join("; "),
                c.doc
            ));
        }
    }
    out
}
