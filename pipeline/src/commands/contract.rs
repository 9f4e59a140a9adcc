//! `medallion contract`: the feed contract as Markdown (the source of docs/feeds.md).

pub fn run(g: &crate::commands::Globals) -> Result<u8, crate::Failure> {
    if g.json {
        crate::render::print_json(&serde_json::json!({ "markdown": schemas::contract::markdown() }));
        return Ok(crate::exit::OK);
    }
    crate::render::write_stdout(format_args!("{}", schemas::contract::markdown()));
    Ok(crate::exit::OK)
}
