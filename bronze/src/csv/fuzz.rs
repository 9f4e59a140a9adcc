//! Fuzzing the reader, seeded by the committed corpus in `bronze/fuzz/corpus/` (every file
//! there, then mutations of them and generated inputs, `MEDALLION_FUZZ_CASES` cases each,
//! default 500; the test script sets a larger fixed budget). Invariants: no input makes it
//! panic; the result never depends on how the stream is cut; every byte of the input is
//! accounted for (a BOM, an empty line's line end, a record's field content, quote syntax, a
//! delimiter or a line end) or the input is reported invalid; RFC 4180 round-trips.

use super::*;
use proptest::prelude::*;

type Parsed = Result<Vec<(u64, Vec<Vec<u8>>, Vec<u8>)>, CsvError>;

fn parse_bytes(chunks: &[&[u8]], limit: usize) -> Parsed {
    let mut r = CsvReader::new(limit);
    let mut out = Vec::new();
    let mut sink = |rec: RecordRef<'_>| -> Result<(), CsvError> {
        out.push((rec.line, rec.fields().map(<[u8]>::to_vec).collect(), rec.raw.to_vec()));
        Ok(())
    };
    for c in chunks {
        r.push(c, &mut sink)?;
    }
    r.finish(&mut sink)?;
    Ok(out)
}

/// Quotes every field (RFC 4180: the field in quotes, each quote doubled).
fn quote(records: &[Vec<Vec<u8>>], crlf: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for rec in records {
        for (i, f) in rec.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            for &b in f {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            out.push(b'"');
        }
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
    }
    out
}

fn fields_only(p: &Parsed) -> Vec<Vec<Vec<u8>>> {
    p.as_ref().map(|r| r.iter().map(|(_, f, _)| f.clone()).collect()).unwrap_or_default()
}

/// Walks a record's raw bytes: each field is either its bytes verbatim or, when it starts
/// with a quote, the quoted form (quotes doubled); fields are separated by one comma and
/// nothing is left over. Returns why not.
fn raw_is_exactly_the_fields(raw: &[u8], fields: &[Vec<u8>]) -> Result<(), String> {
    let mut at = 0;
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            if raw.get(at) != Some(&b',') {
                return Err(format!("no delimiter before field {i} at byte {at}"));
            }
            at += 1;
        }
        if raw.get(at) == Some(&b'"') {
            let mut enc = vec![b'"'];
            for &b in f {
                if b == b'"' {
                    enc.push(b'"');
                }
                enc.push(b);
            }
            enc.push(b'"');
            if !raw[at..].starts_with(&enc) {
                return Err(format!("quoted field {i} at byte {at} is not its content"));
            }
            at += enc.len();
        } else {
            if !raw[at..].starts_with(f) {
                return Err(format!("field {i} at byte {at} is not its content"));
            }
            at += f.len();
        }
    }
    if at != raw.len() {
        return Err(format!("{} bytes of the record are in no field", raw.len() - at));
    }
    Ok(())
}

/// The accounting invariant: the input is an optional BOM, then records' raw text separated
/// (and surrounded) by line ends only — each record followed by one — and each raw text is
/// exactly its fields.
fn every_byte_accounted(input: &[u8], parsed: &Parsed) -> Result<(), String> {
    let Ok(records) = parsed else { return Ok(()) }; // reported
    let mut at = if input.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
    let line_ends = |from: usize, to: usize| input[from..to].iter().all(|b| *b == b'\n' || *b == b'\r');
    for (n, (_, fields, raw)) in records.iter().enumerate() {
        let start = (at..=input.len()).find(|&i| input[i..].starts_with(raw) && line_ends(at, i)).ok_or_else(|| format!("record {n}'s raw text is not next in the input"))?;
        raw_is_exactly_the_fields(raw, fields).map_err(|e| format!("record {n}: {e}"))?;
        at = start + raw.len();
        if at < input.len() && !matches!(input[at], b'\n' | b'\r') {
            return Err(format!("record {n} is not followed by a line end"));
        }
    }
    if !line_ends(at.min(input.len()), input.len()) {
        return Err(format!("{} bytes after the last record are in no record", input.len() - at));
    }
    Ok(())
}

/// Every invariant on one input; `Err` names the broken one.
fn check(input: &[u8], cut: usize, limit: usize) -> Result<(), String> {
    let whole = parse_bytes(&[input], 1 << 20);
    let at = cut % (input.len() + 1);
    if parse_bytes(&[&input[..at], &input[at..]], 1 << 20) != whole {
        return Err(format!("cutting at byte {at} changed the result"));
    }
    let bytewise: Vec<&[u8]> = input.chunks(1).collect();
    if input.len() <= 512 && parse_bytes(&bytewise, 1 << 20) != whole {
        return Err("one byte at a time changed the result".into());
    }
    every_byte_accounted(input, &whole)?;
    if whole.is_ok() {
        let records = fields_only(&whole);
        let again = parse_bytes(&[&quote(&records, at % 2 == 0)], 1 << 20);
        if fields_only(&again) != records {
            return Err("re-quoting the parsed fields did not parse back to them".into());
        }
    }
    let _ = parse_bytes(&[input], limit); // a small record cap errors, never panics
    Ok(())
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "the committed corpus is there");
    v
}

fn cases() -> u32 {
    std::env::var("MEDALLION_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
}

#[test]
fn corpus_files_hold_every_invariant() {
    for (name, input) in corpus() {
        for cut in 0..=input.len().min(64) {
            check(&input, cut, 8).unwrap_or_else(|e| panic!("corpus {name}: {e}"));
        }
    }
}

#[test]
fn the_accounting_check_catches_a_lost_byte() {
    let input = b"a,b\n\"x\",2\n";
    let mut parsed = parse_bytes(&[input], 1 << 20);
    assert!(every_byte_accounted(input, &parsed).is_ok());
    parsed.as_mut().unwrap()[1].1[0].pop(); // a field that lost its byte
    assert!(every_byte_accounted(input, &parsed).is_err());
    let mut parsed = parse_bytes(&[input], 1 << 20);
    parsed.as_mut().unwrap().pop(); // a record nobody reported
    assert!(every_byte_accounted(input, &parsed).is_err());
}

/// A corpus file with bytes replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let interesting = prop_oneof![Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(0u8), Just(0xEF), any::<u8>()];
    (prop::sample::select(corpus()), proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, interesting), 0..8)).prop_map(|((_, mut bytes), edits)| {
        for (i, op, b) in edits {
            let at = i.index(bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        bytes
    })
}

/// Bytes that exercise every state: quotes, separators, line ends, a BOM's bytes, NUL.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b' '), Just(0u8),
            Just(0xEF), Just(0xBB), Just(0xBF), b'a'..=b'c', any::<u8>(),
        ],
        0..200,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_corpus_holds_every_invariant(input in mutated(), cut in any::<usize>(), limit in 1usize..64) {
        if let Err(e) = check(&input, cut, limit) {
            prop_assert!(false, "{}: {:?}", e, String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn generated_bytes_hold_every_invariant(input in csvish(), cut in any::<usize>(), limit in 1usize..64) {
        if let Err(e) = check(&input, cut, limit) {
            prop_assert!(false, "{}: {:?}", e, String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn quoted_records_parse_back(records in proptest::collection::vec(
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 1..5), 0..6), crlf in any::<bool>()) {
        let parsed = parse_bytes(&[&quote(&records, crlf)], 1 << 20);
        prop_assert_eq!(fields_only(&parsed), records);
    }
}
