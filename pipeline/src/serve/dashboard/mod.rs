//! The dashboard served at `/`: the pipeline's state at a glance, as server-rendered HTML with
//! SVG charts — no script, no external asset (the stylesheet is embedded), so it works
//! offline and loads fast. Pages: the overview (runs of the last `days` days as a timeline of
//! stages with status, duration and error; products diffs; net revenue by day and partner,
//! top categories, return rate and the feeds' reject rate), one date (its runs, each feed's
//! reconciliation read = valid + rejected + duplicate, quarantined files with their reasons),
//! and a feed's rejected rows, paged.
//!
//! Access needs a `reader` (or `operator`) key like the API: sent as a header, or entered once
//! on `/login`, which keeps it in an HttpOnly, SameSite=Strict cookie. Every value shown is
//! HTML-escaped (maud).

mod charts;
mod data;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use schemas::RunDate;
use serde::Deserialize;

use super::auth::Role;
use super::{ApiError, AppState};

const COOKIE: &str = "medallion_key";
const STYLE: &str = include_str!("style.css");
const MAX_DAYS: u32 = 366;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/dashboard/date/{date}", get(date_page))
        .route("/dashboard/feeds/{id}/rejects", get(rejects_page))
        .route("/dashboard/style.css", get(|| async { ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "max-age=3600")], STYLE) }))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
}

/// The key of a dashboard request: the cookie set by `/login`, else the API's headers.
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == COOKIE).then(|| url::form_urlencoded::parse(format!("k={value}").as_bytes()).map(|(_, v)| v.into_owned()).next().unwrap_or_default())
    })
}

/// Whether the request may see the dashboard.
fn allowed(state: &AppState, headers: &HeaderMap) -> bool {
    if state.insecure_no_auth {
        return true;
    }
    let header_key = super::auth::presented(headers).map(str::to_string);
    [cookie_key(headers), header_key].into_iter().flatten().any(|k| state.keys.roles(&k).iter().any(|r| r.allows(Role::Reader)))
}

/// A page, or the way to the login form.
struct Page(Result<Markup, ApiError>);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(m) => Html(m.into_string()).into_response(),
            Err(e) => {
                let status = e.status;
                (status, Html(layout("Error", html! { p.error { (e.to_string()) } }).into_string())).into_response()
            }
        }
    }
}

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · medallion" }
                link rel="stylesheet" href="/dashboard/style.css";
            }
            body {
                header {
                    a.brand href="/" { "medallion" }
                    nav { a href="/" { "Overview" } a href="/docs" { "API" } a href="/metrics" { "Metrics" } }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

fn secs(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 60.0 => format!("{:.0} min {:.0} s", (s / 60.0).floor(), s % 60.0),
        Some(s) => format!("{s:.1} s"),
        None => "–".into(),
    }
}

fn count(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "–".into())
}

#[derive(Deserialize)]
struct Range {
    days: Option<u32>,
}

async fn overview(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Range>) -> Response {
    if !allowed(&state, &headers) {
        return Redirect::to("/login").into_response();
    }
    Page(overview_page(&state, q.days.unwrap_or(30).clamp(1, MAX_DAYS)).await).into_response()
}

async fn overview_page(state: &AppState, days: u32) -> Result<Markup, ApiError> {
    let to = RunDate::new(chrono::Utc::now().date_naive());
    let from = RunDate::new(to.date() - chrono::Days::new(days as u64 - 1));
    let runs = data::runs(state, from, to).await?;
    let diffs = data::product_diffs(state, from, to).await?;
    let (revenue, returns, top, rejects) = (
        data::net_revenue(state, from, to).await?,
        data::return_rate(state, from, to).await?,
        data::top_categories(state, from, to, 10).await?,
        data::reject_rate(state, from, to).await?,
    );
    let mut latest: Vec<&data::Run> = Vec::new();
    for r in &runs {
        if latest.last().is_none_or(|l| l.date != r.date) {
            latest.push(r);
        }
    }
    let body = html! {
        p.range {
            "Last " (days) " days (" (from) " to " (to) "). "
            @for d in [7u32, 30, 90, 365] { a href={ "/?days=" (d) } { (d) " days" } " " }
        }
        section id="runs" {
            h2 { "Runs" }
            @if latest.is_empty() { p.empty { "No run in this range yet." } }
            @else {
                table.timeline {
                    thead { tr { th { "date" } th { "status" } th { "kind" } th { "bronze" } th { "silver" } th { "gold" } th { "duration" } th { "error" } } }
                    tbody {
                        @for r in &latest {
                            tr {
                                td { a href={ "/dashboard/date/" (r.date) } { (r.date) } }
                                td { (badge(&r.status)) }
                                td { (r.kind) }
                                @for stage in ["bronze", "silver", "gold"] {
                                    @match r.jobs.iter().find(|j| j.stage == stage) {
                                        Some(j) => td title=(j.error.clone().unwrap_or_default()) { (badge(&j.status)) " " small { (secs(j.seconds)) } },
                                        None => td.none { "–" },
                                    }
                                }
                                td { (secs(r.seconds)) }
                                td.err { (r.error.clone().unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
        section id="charts" class="charts" {
            figure { (PreEscaped(charts::lines("Net revenue by day and partner", &revenue, false))) }
            figure { (PreEscaped(charts::bars("Top categories by revenue", &top))) }
            figure { (PreEscaped(charts::lines("Return rate (returned ÷ gross revenue)", &returns, true))) }
            figure { (PreEscaped(charts::lines("Feeds' reject rate (rejected ÷ read rows)", &rejects, true))) }
        }
        section id="products" {
            h2 { "Products diff" }
            @if diffs.is_empty() { p.empty { "No products diff in this range yet." } }
            @else {
                table {
                    thead { tr { th { "date" } th { "partner" } @for c in data::DIFF_COLUMNS { th.num { (c) } } } }
                    tbody { @for d in &diffs { tr { td { a href={ "/dashboard/date/" (d.date) } { (d.date) } } td { (d.partner) } @for n in d.counts { td.num { (n) } } } } }
                }
            }
        }
    };
    Ok(layout("Pipeline overview", body))
}

async fn date_page(State(state): State<AppState>, headers: HeaderMap, Path(date): Path<String>) -> Response {
    if !allowed(&state, &headers) {
        return Redirect::to("/login").into_response();
    }
    let Ok(date) = date.parse::<RunDate>() else {
        return Page(Err(ApiError::bad_request(format!("{date:?} is not a date (YYYY-MM-DD)")))).into_response();
    };
    Page(date_body(&state, date).await).into_response()
}

async fn date_body(state: &AppState, date: RunDate) -> Result<Markup, ApiError> {
    let runs = data::runs(state, date, date).await?;
    let feeds = data::feeds(state, date).await?;
    let diffs = data::product_diffs(state, date, date).await?;
    let partners: std::collections::BTreeSet<&str> = feeds.iter().map(|f| f.partner.as_str()).collect();
    let body = html! {
        section id="runs" {
            h2 { "Runs" }
            @if runs.is_empty() { p.empty { "No run of " (date) " yet." } }
            table {
                thead { tr { th { "run" } th { "kind" } th { "status" } th { "started" } th { "stages" } th { "error" } } }
                tbody { @for r in &runs { tr {
                    td { code { (r.run_id) } } td { (r.kind) } td { (badge(&r.status)) } td { (r.started_at) }
                    td { @for j in &r.jobs { span.stage title=(j.error.clone().unwrap_or_default()) { (j.stage) " " (badge(&j.status)) " " small { (secs(j.seconds)) @if let Some(n) = j.rows { ", " (n) " rows" } @if j.attempts > 1 { ", " (j.attempts) " attempts" } } } " " } }
                    td.err { (r.error.clone().unwrap_or_default()) }
                } } }
            }
        }
        section id="feeds" {
            h2 { "Feeds and reconciliation" }
            @if feeds.is_empty() { p.empty { "No feed recorded for " (date) "." } }
            @for p in &partners {
                h3 { (p) }
                table.reconciliation {
                    thead { tr { th { "feed" } th { "dataset" } th { "file" } th { "status" } th.num { "read" } th.num { "valid" } th.num { "rejected" } th.num { "duplicate" } th { "balanced" } th { "reason" } } }
                    tbody { @for f in feeds.iter().filter(|f| f.partner == *p) { tr {
                        td { code { (f.feed_id) } } td { (f.dataset) } td { (f.file_name) } td { (badge(&f.status)) }
                        td.num { (count(f.rows_read)) } td.num { (count(f.valid)) }
                        td.num { @if f.rejected.unwrap_or(0) > 0 { a href={ "/dashboard/feeds/" (f.feed_id) "/rejects" } { (count(f.rejected)) } } @else { (count(f.rejected)) } }
                        td.num { (count(f.duplicate)) }
                        td { @match f.balanced() { Some(true) => span.ok { "✓" }, Some(false) => span.bad { "✗" }, None => "–" } }
                        td.err { (f.reason.clone().unwrap_or_default()) @if let Some(d) = &f.detail { " — " (d) } }
                    } } }
                }
            }
        }
        section id="products" {
            h2 { "Products diff" }
            @if diffs.is_empty() { p.empty { "No products diff for " (date) "." } }
            @else {
                table {
                    thead { tr { th { "partner" } @for c in data::DIFF_COLUMNS { th.num { (c) } } } }
                    tbody { @for d in &diffs { tr { td { (d.partner) } @for n in d.counts { td.num { (n) } } } } }
                }
            }
        }
    };
    Ok(layout(&format!("Date {date}"), body))
}

#[derive(Deserialize)]
struct Cursor {
    cursor: Option<String>,
}

/// A feed's rejected rows, 100 a page, through the same code as `GET /v1/feeds/{id}/rejects`.
async fn rejects_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>, Query(q): Query<Cursor>) -> Response {
    if !allowed(&state, &headers) {
        return Redirect::to("/login").into_response();
    }
    let query = super::feeds::RejectsQuery { limit: Some(100), cursor: q.cursor };
    let page = super::feeds::feed_rejects(super::auth::Reader, State(state), Path(id.clone()), Query(query)).await;
    Page(page.map(|axum::Json(p)| {
        let body = html! {
            p { "Rows of feed " code { (p.feed_id) } " that silver rejected, with the first rule each broke and the values as sent." }
            @if p.items.is_empty() { p.empty { "No rejected row." } }
            @else {
                table.rejects {
                    thead { tr { th.num { "row" } th.num { "line" } th { "reason" } th { "values as sent" } } }
                    tbody { @for r in &p.items { tr {
                        td.num { (r.row_number) } td.num { (r.line_number) } td.err { (r.reason) }
                        td { @match &r.values {
                            Some(v) => { @for (k, val) in v { span.stage { b { (k) } "=" (val.as_str().map(str::to_string).unwrap_or_else(|| val.to_string())) } " " } },
                            None => code { (r.raw) },
                        } }
                    } } }
                }
            }
            @if let Some(next) = &p.next_cursor {
                p { a href={ "/dashboard/feeds/" (p.feed_id) "/rejects?cursor=" (next) } { "next page →" } }
            }
        };
        layout(&format!("Rejected rows of {id}"), body)
    }))
    .into_response()
}

async fn login_form() -> Html<String> {
    Html(login_page(None).into_string())
}

fn login_page(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        html! {
            @if let Some(e) = error { p.error { (e) } }
            form method="post" action="/login" {
                label for="key" { "API key (reader or operator)" }
                input id="key" type="password" name="key" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
struct Login {
    key: String,
}

async fn login(State(state): State<AppState>, Form(f): Form<Login>) -> Response {
    if !state.insecure_no_auth && !state.keys.roles(&f.key).iter().any(|r| r.allows(Role::Reader)) {
        return (StatusCode::UNAUTHORIZED, Html(login_page(Some("This key may not read: it needs the reader or operator role.")).into_string())).into_response();
    }
    let value: String = url::form_urlencoded::byte_serialize(f.key.as_bytes()).collect();
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    ([(header::SET_COOKIE, format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))], Redirect::to("/login")).into_response()
}
