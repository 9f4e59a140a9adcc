//! `GET /docs`: a browsable HTML page rendered by this binary from the generated OpenAPI
//! document (every operation with its parameters, request body and responses, then every
//! schema). No JavaScript, no CDN: it works offline. Every value is HTML-escaped.

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A schema in one line: its `$ref` name, type, or array item.
fn schema_name(s: &Value) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!("<a href=\"#schema-{0}\">{0}</a>", esc(name));
    }
    match s.get("type") {
        Some(Value::String(t)) if t == "array" => format!("array of {}", s.get("items").map(schema_name).unwrap_or_default()),
        Some(Value::String(t)) => esc(t),
        Some(Value::Array(ts)) => esc(&ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | ")),
        _ => s.get("oneOf").or_else(|| s.get("allOf")).and_then(Value::as_array).map(|v| v.iter().map(schema_name).collect::<Vec<_>>().join(" | ")).unwrap_or_else(|| "object".into()),
    }
}

fn text(v: &Value, key: &str) -> String {
    esc(v.get(key).and_then(Value::as_str).unwrap_or_default())
}

/// The HTML page for `doc`.
pub fn render(doc: &utoipa::openapi::OpenApi) -> String {
    let doc = serde_json::to_value(doc).unwrap_or_default();
    let info = &doc["info"];
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
    h.push_str(&format!("{} API</title>", text(info, "title")));
    h.push_str("<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}code,pre{background:#f4f4f4;padding:.1em .3em}\
                .op{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.5em 1em}.m{font-weight:bold;text-transform:uppercase;margin-right:.5em}\
                table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}</style></head><body>");
    h.push_str(&format!("<h1>{} {}</h1><p>{}</p>", text(info, "title"), text(info, "version"), text(info, "description")));
    h.push_str("<p>The machine-readable document: <a href=\"/openapi.json\">/openapi.json</a>.</p><h2>Operations</h2>");
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(ops) = item.as_object() else { continue };
            for (method, op) in ops {
                h.push_str(&format!("<div class=\"op\"><h3><span class=\"m\">{}</span><code>{}</code></h3>", esc(method), esc(path)));
                h.push_str(&format!("<p><b>{}</b></p><p>{}</p>", text(op, "summary"), text(op, "description")));
                if op.get("security").is_some() {
                    h.push_str("<p>Needs an API key.</p>");
                }
                if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
                    h.push_str("<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>");
                    for p in params {
                        h.push_str(&format!(
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                            text(p, "name"),
                            text(p, "in"),
                            p.get("schema").map(schema_name).unwrap_or_default(),
                            p["required"].as_bool().unwrap_or(false),
                            text(p, "description")
                        ));
                    }
                    h.push_str("</table>");
                }
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    for (ct, c) in content {
                        h.push_str(&format!("<p>Body <code>{}</code>: {}</p>", esc(ct), c.get("schema").map(schema_name).unwrap_or_default()));
                    }
                }
                if let Some(responses) = op["responses"].as_object() {
                    h.push_str("<table><tr><th>status</th><th>description</th><th>body</th></tr>");
                    for (status, r) in responses {
                        let body: Vec<String> = r["content"].as_object().map(|c| c.iter().map(|(ct, s)| format!("{} <code>{}</code>", s.get("schema").map(schema_name).unwrap_or_default(), esc(ct))).collect()).unwrap_or_default();
                        h.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(status), text(r, "description"), body.join("<br>")));
                    }
                    h.push_str("</table>");
                }
                h.push_str("</div>");
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            h.push_str(&format!("<h3 id=\"schema-{0}\">{0}</h3><p>{1}</p>", esc(name), text(s, "description")));
            if let Some(props) = s["properties"].as_object() {
                let required: Vec<&str> = s["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                h.push_str("<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>");
                for (field, p) in props {
                    h.push_str(&format!(
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(field),
                        schema_name(p),
                        required.contains(&field.as_str()),
                        text(p, "description")
                    ));
                }
                h.push_str("</table>");
            } else {
                h.push_str(&format!("<pre>{}</pre>", esc(&serde_json::to_string_pretty(s).unwrap_or_default())));
            }
        }
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_and_lists_operations() {
        let mut doc = super::super::openapi::base();
        doc.info.description = Some("<script>alert(1)</script>".into());
        let html = super::render(&doc);
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
        assert!(html.contains("id=\"schema-Problem\""), "{html}");
    }
}
