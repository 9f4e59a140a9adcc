//! `medallion contract`: the feed contract as Markdown (the source of docs/feeds.md).

pub fn run() -> Result<u8, crate::Failure> {
    print!("{}", schemas::contract::markdown());
    Ok(crate::exit::OK)
}
