//! The gold models as data, read from `gold/models/` (embedded at compile time, parsed once):
//! each table `t` is `t.sql` (the DataFusion query) and `t.toml` (its description, grain,
//! date column, indexes, columns with types and docs, and its tests), like a dbt model and
//! its `schema.yml`. The model list, the warehouse DDL with its `COMMENT ON`, the lake's
//! Parquet schemas, the checks and `docs/gold.md` all read this one description
//! (CONTRACT.md §3). `gold/models/README.md` documents the format for analysts.

use std::sync::OnceLock;

use serde::Deserialize;

mod files {
    include!(concat!(env!("OUT_DIR"), "/model_files.rs"));
}

/// The type of a gold column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoldType {
    /// A calendar date (PostgreSQL `date`; SQLite `DATE` holding 'YYYY-MM-DD').
    Date,
    Text,
    /// A count (PostgreSQL `bigint`).
    Int,
    /// Money: NUMERIC(18,2), rounded half away from zero from exact sums.
    Money,
    /// A ratio: double precision computed from exact sums.
    Ratio,
    Bool,
}

impl GoldType {
    pub fn as_str(self) -> &'static str {
        match self {
            GoldType::Date => "date",
            GoldType::Text => "text",
            GoldType::Int => "int",
            GoldType::Money => "money",
            GoldType::Ratio => "ratio",
            GoldType::Bool => "bool",
        }
    }
}

/// A value of an `accepted_values` test.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AcceptedValue {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl AcceptedValue {
    /// The value as a SQL literal (DataFusion).
    fn sql(&self) -> String {
        match self {
            AcceptedValue::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
            AcceptedValue::Int(i) => i.to_string(),
            AcceptedValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: GoldType,
    /// Whether the column may hold NULL (grain columns never do); not nullable = a not_null test.
    #[serde(default)]
    pub nullable: bool,
    #[serde(rename = "description")]
    pub doc: String,
    /// An accepted_values test: the column holds only these values (or NULL).
    #[serde(default)]
    pub accepted_values: Vec<AcceptedValue>,
}

/// A gold table as the warehouse and the lake see it.
#[derive(Debug, Clone)]
pub struct GoldTable {
    pub name: String,
    pub doc: String,
    /// The business date a publish replaces the table by; `None`: replaced whole every run.
    pub date_column: Option<String>,
    /// The grain: the primary key (a unique test).
    pub grain: Vec<String>,
    /// Extra indexes for the usual filters (the primary key already leads with the date).
    pub indexes: Vec<Vec<String>>,
    pub columns: Vec<GoldColumn>,
    /// How an incremental publish narrows its replacement below whole dates (dated tables) or
    /// the whole table (undated ones); `None`: whole dates / the whole table.
    pub incremental: Option<Incremental>,
}

/// The `[incremental]` block of a model file: an incremental publish replaces exactly the
/// rows whose `key` columns take one of the values `touched` returns (recomputed from silver;
/// a key that no longer has a row is deleted). The query reads silver and the change views
/// gold registers for the publish (see `gold/models/README.md`); on a dated table it adds to
/// the whole dates the publish replaces anyway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Grain columns (leading with the date column on a dated table).
    pub key: Vec<String>,
    /// A query returning the key values to replace, its columns named and ordered as `key`.
    pub touched: String,
    /// Silver tables (holding every `key` column) that the model then reads only for the
    /// touched keys: their rows of other keys cannot change the touched keys' rows.
    #[serde(default)]
    pub narrow: Vec<String>,
}

impl GoldTable {
    pub fn column(&self, name: &str) -> Option<&GoldColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A named query returning the offending rows (an empty result passes), like a dbt test.
/// Reconciliation checks may use `{order_filter}` (the scope's predicate on `order_date`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    pub name: String,
    pub description: String,
    pub sql: String,
}

/// What a test asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestKind {
    /// Derived from a column that is not nullable.
    NotNull,
    /// Derived from the grain.
    Unique,
    /// Derived from a column's `accepted_values`.
    AcceptedValues,
    /// A reconciliation check written in the model's file (`[[checks]]`).
    Reconciliation,
}

/// One test of a model. Generic tests (not_null, unique, accepted_values) query the computed
/// table as `out_<table>`; reconciliation checks may also read silver and the shared views.
#[derive(Debug, Clone)]
pub struct Test {
    pub kind: TestKind,
    pub check: Check,
}

/// A shared view the models build on (not published).
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub name: &'static str,
    pub sql: &'static str,
}

/// One gold model: its SQL and the table it publishes, with its tests.
#[derive(Debug, Clone)]
pub struct Model {
    pub name: &'static str,
    pub sql: &'static str,
    pub table: GoldTable,
    pub tests: Vec<Test>,
}

impl Model {
    /// The reconciliation checks of this model's file.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.tests.iter().filter(|t| t.kind == TestKind::Reconciliation).map(|t| &t.check)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    description: String,
    grain: Vec<String>,
    date_column: Option<String>,
    #[serde(default)]
    indexes: Vec<Vec<String>>,
    columns: Vec<GoldColumn>,
    #[serde(default)]
    checks: Vec<Check>,
    incremental: Option<Incremental>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelList {
    views: Vec<String>,
    tables: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChecksFile {
    checks: Vec<Check>,
}

/// Everything parsed from `gold/models/`.
struct Project {
    views: Vec<View>,
    models: Vec<Model>,
    checks: Vec<Check>,
}

fn file(name: &str) -> Option<&'static str> {
    files::FILES.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, String> {
    let text = file(name).ok_or_else(|| format!("gold/models/{name} is missing"))?;
    toml::from_str(text).map_err(|e| format!("gold/models/{name}: {e}"))
}

/// The generic tests a table's description implies: not_null per column that is not
/// nullable, unique on the grain, accepted_values where given.
fn generic_tests(t: &GoldTable) -> Vec<Test> {
    let out = format!("out_{}", t.name);
    let mut v = Vec::new();
    for c in t.columns.iter().filter(|c| !c.nullable) {
        v.push(Test {
            kind: TestKind::NotNull,
            check: Check {
                name: format!("not_null_{}_{}", t.name, c.name),
                description: format!("{}.{} is never NULL", t.name, c.name),
                sql: format!("SELECT * FROM {out} WHERE {} IS NULL", c.name),
            },
        });
    }
    let grain = t.grain.join(", ");
    v.push(Test {
        kind: TestKind::Unique,
        check: Check {
            name: format!("unique_{}_grain", t.name),
            description: format!("one row per {grain}"),
            sql: format!("SELECT {grain}, COUNT(*) AS n FROM {out} GROUP BY {grain} HAVING COUNT(*) > 1"),
        },
    });
    for c in t.columns.iter().filter(|c| !c.accepted_values.is_empty()) {
        let list: Vec<String> = c.accepted_values.iter().map(AcceptedValue::sql).collect();
        v.push(Test {
            kind: TestKind::AcceptedValues,
            check: Check {
                name: format!("accepted_values_{}_{}", t.name, c.name),
                description: format!("{}.{} is one of {}", t.name, c.name, list.join(", ")),
                sql: format!("SELECT {c}, COUNT(*) AS n FROM {out} WHERE {c} NOT IN ({}) GROUP BY {c}", list.join(", "), c = c.name),
            },
        });
    }
    v
}

fn validate(t: &GoldTable) -> Result<(), String> {
    let err = |m: String| Err(format!("gold/models/{}.toml: {m}", t.name));
    if t.grain.is_empty() {
        return err("the grain is empty".into());
    }
    for g in &t.grain {
        match t.column(g) {
            None => return err(format!("grain column {g} is not a column")),
            Some(c) if c.nullable => return err(format!("grain column {g} is nullable")),
            _ => {}
        }
    }
    if let Some(d) = &t.date_column {
        if t.column(d).map(|c| c.ty) != Some(GoldType::Date) {
            return err(format!("date_column {d} is not a date column"));
        }
        if t.grain[0] != *d {
            return err(format!("the grain must lead with the date column {d}"));
        }
    }
    for idx in &t.indexes {
        if let Some(c) = idx.iter().find(|c| t.column(c).is_none()) {
            return err(format!("index column {c} is not a column"));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(c) = t.columns.iter().find(|c| !seen.insert(c.name.as_str())) {
        return err(format!("column {} appears twice", c.name));
    }
    if let Some(inc) = &t.incremental {
        if inc.key.is_empty() {
            return err("[incremental] key is empty".into());
        }
        if let Some(k) = inc.key.iter().find(|k| !t.grain.contains(k)) {
            return err(format!("[incremental] key column {k} is not a grain column"));
        }
        if let Some(n) = inc.narrow.iter().find(|n| !crate::input_tables().any(|i| i == n.as_str())) {
            return err(format!("[incremental] narrow: {n} is not a silver table gold reads"));
        }
        if let Some(d) = &t.date_column {
            if inc.key[0] != *d {
                return err(format!("[incremental] key must lead with the date column {d}"));
            }
        }
    }
    Ok(())
}

fn load() -> Result<Project, String> {
    let list: ModelList = parse("_models.toml")?;
    let mut views = Vec::new();
    for v in &list.views {
        let sql = file(&format!("{v}.sql")).ok_or_else(|| format!("gold/models/{v}.sql is missing"))?;
        views.push(View { name: leak(v), sql });
    }
    let mut models = Vec::new();
    for name in &list.tables {
        let f: ModelFile = parse(&format!("{name}.toml"))?;
        if f.name != *name {
            return Err(format!("gold/models/{name}.toml: name is {:?}", f.name));
        }
        let sql = file(&format!("{name}.sql")).ok_or_else(|| format!("gold/models/{name}.sql is missing"))?;
        let table = GoldTable {
            name: f.name,
            doc: f.description,
            date_column: f.date_column,
            grain: f.grain,
            indexes: f.indexes,
            columns: f.columns,
            incremental: f.incremental,
        };
        validate(&table)?;
        let mut tests = generic_tests(&table);
        tests.extend(f.checks.into_iter().map(|check| Test { kind: TestKind::Reconciliation, check }));
        models.push(Model { name: leak(name), sql, table, tests });
    }
    // A description nobody lists would silently not be published: refuse it.
    for (n, _) in files::FILES {
        if let Some(stem) = n.strip_suffix(".toml") {
            if !stem.starts_with('_') && !list.tables.iter().any(|t| t == stem) {
                return Err(format!("gold/models/{n} is not listed in gold/models/_models.toml"));
            }
        }
    }
    let checks = parse::<ChecksFile>("_checks.toml")?.checks;
    let mut names = std::collections::BTreeSet::new();
    for c in models.iter().flat_map(|m| m.tests.iter().map(|t| &t.check)).chain(&checks) {
        if !names.insert(c.name.as_str()) {
            return Err(format!("gold/models: two tests are named {}", c.name));
        }
    }
    Ok(Project { views, models, checks })
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn project() -> &'static Project {
    static PROJECT: OnceLock<Project> = OnceLock::new();
    // The files are compiled in and a unit test parses them: a failure here is a build defect.
    PROJECT.get_or_init(|| load().unwrap_or_else(|e| panic!("{e}")))
}

/// The gold tables' models, in the contract's (publishing) order.
pub fn models() -> &'static [Model] {
    &project().models
}

/// The shared views the models build on.
pub fn views() -> &'static [View] {
    &project().views
}

/// The reconciliation checks that span several models (`gold/models/_checks.toml`).
pub fn cross_checks() -> &'static [Check] {
    &project().checks
}

/// Every reconciliation check: each model's own, in model order, then the cross-model ones.
pub fn reconciliation_checks() -> impl Iterator<Item = &'static Check> {
    models().iter().flat_map(|m| m.checks()).chain(cross_checks())
}

pub fn model(name: &str) -> Option<&'static Model> {
    models().iter().find(|m| m.name == name)
}

/// The gold table `name`.
pub fn table(name: &str) -> Option<&'static GoldTable> {
    model(name).map(|m| &m.table)
}

/// Every gold table, in the contract's order.
pub fn tables() -> impl Iterator<Item = &'static GoldTable> {
    models().iter().map(|m| &m.table)
}

/// `docs/gold.md`: the gold tables' documentation, generated from the model files
/// (`medallion`'s unit tests check that the committed file equals it).
pub fn markdown() -> String {
    let mut s = String::from(
        "# Gold tables\n\nGenerated from `gold/models/*.toml` (do not edit; run `cargo test -p gold --lib` \
         with `UPDATE_DOCS=1` to regenerate). The rules behind the numbers are in CONTRACT.md section 3.\n\n",
    );
    for m in models() {
        let t = &m.table;
        s.push_str(&format!("## gold.{}\n\n{}\n\n", t.name, t.doc));
        s.push_str(&format!("- Grain: {}\n", t.grain.join(", ")));
        match &t.date_column {
            Some(d) => s.push_str(&format!("- Published by business date: `{d}`\n")),
            None => s.push_str("- Published by business date: none\n"),
        }
        match &t.incremental {
            Some(inc) => s.push_str(&format!("- Incremental publish: replaces the rows of the touched {} (see `[incremental]`)\n", inc.key.join(", "))),
            None if t.date_column.is_some() => s.push_str("- Incremental publish: replaces whole touched dates\n"),
            None => s.push_str("- Incremental publish: none (replaced whole by every publish)\n"),
        }
        for idx in &t.indexes {
            s.push_str(&format!("- Index: {}\n", idx.join(", ")));
        }
        s.push_str(&format!("- Model: `gold/models/{0}.sql`; description and tests: `gold/models/{0}.toml`\n\n", t.name));
        s.push_str("| column | type | null | description |\n|---|---|---|---|\n");
        for c in &t.columns {
            let mut doc = c.doc.replace('|', "\\|");
            if !c.accepted_values.is_empty() {
                let v: Vec<String> = c.accepted_values.iter().map(AcceptedValue::sql).collect();
                doc.push_str(&format!(" Accepted values: {}.", v.join(", ")));
            }
            s.push_str(&format!("| `{}` | {} | {} | {} |\n", c.name, c.ty.as_str(), if c.nullable { "yes" } else { "no" }, doc));
        }
        s.push_str("\nTests:\n\n");
        for test in &m.tests {
            s.push_str(&format!("- `{}`: {}\n", test.check.name, test.check.description));
        }
        s.push('\n');
    }
    s.push_str("## Checks across tables\n\n");
    for c in cross_checks() {
        s.push_str(&format!("- `{}`: {}\n", c.name, c.description));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_file_parses_and_is_consistent() {
        let p = load().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = p.models.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            ["daily_sales", "category_kpis", "order_kpis", "partner_revenue", "product_changes", "dim_products", "customer_orders", "inventory_status", "campaign_performance"]
        );
        assert_eq!(p.views.iter().map(|v| v.name).collect::<Vec<_>>(), ["_fulfilled_items", "_fulfilled_orders"]);
        for m in &p.models {
            let t = &m.table;
            assert!(!t.grain.is_empty(), "{}", t.name);
            for g in &t.grain {
                assert!(t.column(g).is_some_and(|c| !c.nullable), "{}: grain {g}", t.name);
            }
            // not_null per non-nullable column, one unique test, accepted_values where given.
            let count = |k: TestKind| m.tests.iter().filter(|x| x.kind == k).count();
            assert_eq!(count(TestKind::NotNull), t.columns.iter().filter(|c| !c.nullable).count());
            assert_eq!(count(TestKind::Unique), 1);
            assert_eq!(count(TestKind::AcceptedValues), t.columns.iter().filter(|c| !c.accepted_values.is_empty()).count());
        }
        let checks: Vec<&str> = reconciliation_checks().map(|c| c.name.as_str()).collect();
        assert_eq!(checks, ["gross_revenue_equals_silver", "revenue_share_sums_to_one", "net_revenue_equals_total_revenue", "tables_agree"]);
        assert_eq!(model("inventory_status").unwrap().table.column("needs_reorder").unwrap().accepted_values, [AcceptedValue::Bool(true), AcceptedValue::Bool(false)]);
    }

    #[test]
    fn validation_refuses_bad_descriptions() {
        let mut t = table("daily_sales").unwrap().clone();
        t.grain = vec![];
        assert!(validate(&t).unwrap_err().contains("grain is empty"));
        t.grain = vec!["order_date".into(), "nope".into()];
        assert!(validate(&t).unwrap_err().contains("nope"));
        let mut t = table("daily_sales").unwrap().clone();
        t.incremental = Some(Incremental { key: vec!["partner_id".into()], touched: String::new(), narrow: Vec::new() });
        assert!(validate(&t).unwrap_err().contains("lead with the date column"));
        t.incremental = Some(Incremental { key: vec!["order_date".into(), "orders".into()], touched: String::new(), narrow: Vec::new() });
        assert!(validate(&t).unwrap_err().contains("not a grain column"));
        let bad: Result<ModelFile, _> = toml::from_str("name = 'x'\ndescription = 'd'\ngrain = ['a']\ncolums = []\n");
        assert!(bad.is_err());
    }

    /// Each model's SQL, planned by DataFusion over empty silver tables, returns exactly its
    /// description's columns, in order, with types that cast to the description's.
    #[test]
    fn sql_outputs_match_descriptions() {
        let dir = std::env::temp_dir().join(format!("gold-models-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let lake = ::lake::Location::open("lake", dir.to_str().unwrap(), true).unwrap();
            let ctx = crate::session(&lake).await.unwrap();
            for m in models() {
                let df = ctx.sql(m.sql).await.unwrap_or_else(|e| panic!("{}: {e}", m.name));
                let got: Vec<&str> = df.schema().fields().iter().map(|f| f.name().as_str()).collect();
                let want: Vec<&str> = m.table.columns.iter().map(|c| c.name.as_str()).collect();
                assert_eq!(got, want, "{}", m.name);
                for (f, c) in df.schema().fields().iter().zip(&m.table.columns) {
                    let to = crate::arrow_type(c.ty);
                    assert!(arrow::compute::can_cast_types(f.data_type(), &to), "{}.{}: {} to {to}", m.name, c.name, f.data_type());
                }
                // The model runs, and its generic tests run, on empty silver.
                let out = crate::run_model(&ctx, m, &crate::Scope::ALL).await.unwrap();
                let results = crate::checks::run_tests(&ctx, &[out]).await.unwrap();
                assert!(results.iter().all(|r| r.passed()), "{results:?}");
            }
            // Every `[incremental]` query plans and runs over the change views, keys typed as the table's.
            let groups = crate::incremental::groups(&ctx, &lake, &[], &Default::default(), &crate::Scope::ALL).await.unwrap().unwrap();
            let with: Vec<&str> = models().iter().filter(|m| m.table.incremental.is_some()).map(|m| m.name).collect();
            assert_eq!(groups.0.keys().map(String::as_str).collect::<Vec<_>>().len(), with.len());
            assert!(groups.0.values().all(|k| k.is_empty()));
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// docs/gold.md is generated from the model files (UPDATE_DOCS=1 rewrites it).
    #[test]
    fn docs_are_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/gold.md");
        let want = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let got = std::fs::read_to_string(path).unwrap_or_default();
        assert!(got == want, "docs/gold.md is stale: run UPDATE_DOCS=1 cargo test -p gold --lib docs_are_generated");
    }
}
