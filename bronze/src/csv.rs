//! A streaming RFC 4180 reader.
//!
//! Bytes are pushed in chunks of any size; complete records are handed to a sink as they end,
//! so memory is bounded by the largest record (capped), never by the file. The reader is
//! strict where the contract says a file is broken (`invalid_csv`): an unterminated quote, a
//! quote inside an unquoted field, or text after a closing quote. Empty lines are skipped and
//! not counted; `\n` and `\r\n` both end a record; a leading UTF-8 BOM is dropped.

/// Why a byte stream is not valid CSV. Positions are 1-based physical lines.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("unterminated quoted field starting on line {line}")]
    UnterminatedQuote { line: u64 },
    #[error("line {line}, field {field}: a quote inside an unquoted field (RFC 4180 requires the field to be quoted and the quote doubled)")]
    QuoteInUnquotedField { line: u64, field: usize },
    #[error("line {line}, field {field}: unexpected character after a closing quote")]
    TextAfterClosingQuote { line: u64, field: usize },
    #[error("the record starting on line {line} is larger than {limit} bytes (an unterminated quote?)")]
    RecordTooLarge { line: u64, limit: usize },
}

/// One record: its fields as raw bytes, its first physical line and its raw text (without
/// the line end), for rows that must be kept verbatim.
pub struct RecordRef<'a> {
    pub line: u64,
    data: &'a [u8],
    ends: &'a [usize],
    pub raw: &'a [u8],
}

impl<'a> RecordRef<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    pub fn field(&self, i: usize) -> &'a [u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).map(move |i| self.field(i))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing of the current record read yet.
    RecordStart,
    /// After a CR at the start of a record (an empty `\r\n` line, or a lone CR).
    RecordStartCr,
    FieldStart,
    Unquoted,
    Quoted,
    /// A quote seen inside a quoted field: either an escaped quote or the closing one.
    QuoteInQuoted,
    /// A CR that ends the record if an LF follows.
    Cr,
    /// A CR right after a closing quote: it must end the record (an LF follows, or the stream
    /// ends), since nothing else may follow a closing quote.
    CrAfterQuote,
}

/// Default cap on one record's size.
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

pub struct CsvReader {
    state: State,
    data: Vec<u8>,
    ends: Vec<usize>,
    /// Raw bytes of the current record carried over from earlier chunks.
    raw_carry: Vec<u8>,
    line: u64,
    record_line: u64,
    bom: Vec<u8>,
    bom_done: bool,
    limit: usize,
    /// The record's raw length is tracked to enforce the limit across chunks.
    record_bytes: usize,
}

impl Default for CsvReader {
    fn default() -> Self {
        Self::new(MAX_RECORD_BYTES)
    }
}

impl CsvReader {
    pub fn new(limit: usize) -> Self {
        CsvReader {
            state: State::RecordStart,
            data: Vec::with_capacity(1024),
            ends: Vec::with_capacity(32),
            raw_carry: Vec::new(),
            line: 1,
            record_line: 1,
            bom: Vec::new(),
            bom_done: false,
            limit,
            record_bytes: 0,
        }
    }

    /// Feeds the next chunk; calls `sink` for every record completed in it.
    pub fn push<E: From<CsvError>>(
        &mut self,
        mut chunk: &[u8],
        sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.bom_done {
            // Collect up to three bytes to decide about a BOM, whatever the chunk sizes.
            let need = 3 - self.bom.len();
            let take = need.min(chunk.len());
            self.bom.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.bom.len() < 3 {
                if !self.bom.starts_with(&[0xEF, 0xBB, 0xBF][..self.bom.len()]) {
                    let head = std::mem::take(&mut self.bom);
                    self.bom_done = true;
                    self.scan(&head, sink)?;
                    return self.scan(chunk, sink);
                }
                return Ok(());
            }
            self.bom_done = true;
            let head = std::mem::take(&mut self.bom);
            if head != [0xEF, 0xBB, 0xBF] {
                self.scan(&head, sink)?;
            }
        }
        self.scan(chunk, sink)
    }

    /// Ends the stream: emits a last record without a line end, or reports an open quote.
    pub fn finish<E: From<CsvError>>(
        &mut self,
        sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.bom_done {
            // A stream shorter than three bytes: whatever it holds is data unless a whole BOM.
            self.bom_done = true;
            let head = std::mem::take(&mut self.bom);
            if head != [0xEF, 0xBB, 0xBF] {
                self.scan(&head, sink)?;
            }
        }
        match self.state {
            State::RecordStart | State::RecordStartCr => Ok(()),
            State::Quoted => Err(CsvError::UnterminatedQuote { line: self.record_line }.into()),
            State::FieldStart | State::Unquoted | State::QuoteInQuoted | State::Cr | State::CrAfterQuote => {
                self.ends.push(self.data.len());
                let raw = std::mem::take(&mut self.raw_carry);
                let raw = trim_line_end(&raw);
                self.emit(raw, sink)
            }
        }
    }

    fn emit<E>(&mut self, raw: &[u8], sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>) -> Result<(), E> {
        let rec = RecordRef { line: self.record_line, data: &self.data, ends: &self.ends, raw };
        let r = sink(rec);
        self.data.clear();
        self.ends.clear();
        self.record_bytes = 0;
        self.state = State::RecordStart;
        r
    }

    fn scan<E: From<CsvError>>(
        &mut self,
        chunk: &[u8],
        sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        // Start of the current record's raw bytes inside this chunk (None: it began earlier).
        let mut raw_start: Option<usize> = match self.state {
            State::RecordStart => Some(0),
            _ => None,
        };
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            match self.state {
                State::RecordStart => match b {
                    b'\n' => {
                        self.line += 1;
                        raw_start = Some(i + 1);
                    }
                    b'\r' => self.state = State::RecordStartCr,
                    _ => {
                        self.record_line = self.line;
                        raw_start = Some(i);
                        self.state = State::FieldStart;
                        continue;
                    }
                },
                State::RecordStartCr => {
                    if b == b'\n' {
                        // an empty CRLF line: skipped
                        self.line += 1;
                        self.state = State::RecordStart;
                        raw_start = Some(i + 1);
                    } else {
                        // a lone CR starts a record whose first field begins with CR
                        self.record_line = self.line;
                        // The CR is the record's first raw byte; when it ended the previous
                        // chunk it is already in `raw_carry` and `raw_start` stays None.
                        if i > 0 {
                            raw_start = Some(i - 1);
                        }
                        self.data.push(b'\r');
                        self.state = State::Unquoted;
                        continue;
                    }
                }
                State::FieldStart => match b {
                    b'"' => self.state = State::Quoted,
                    b',' => self.ends.push(self.data.len()),
                    b'\n' => {
                        self.end_line(chunk, raw_start, i, sink)?;
                        raw_start = Some(i + 1);
                    }
                    b'\r' => self.state = State::Cr,
                    _ => {
                        self.data.push(b);
                        self.state = State::Unquoted;
                    }
                },
                State::Unquoted => {
                    // Fast path: copy the run of ordinary bytes at once.
                    let run = chunk[i..].iter().position(|&c| matches!(c, b',' | b'\n' | b'\r' | b'"'));
                    let end = run.map_or(chunk.len(), |r| i + r);
                    self.data.extend_from_slice(&chunk[i..end]);
                    i = end;
                    if i == chunk.len() {
                        break;
                    }
                    match chunk[i] {
                        b',' => self.end_field(),
                        b'\n' => {
                            self.end_line(chunk, raw_start, i, sink)?;
                            raw_start = Some(i + 1);
                        }
                        b'\r' => self.state = State::Cr,
                        _ => {
                            return Err(CsvError::QuoteInUnquotedField { line: self.line, field: self.ends.len() + 1 }.into())
                        }
                    }
                }
                State::Quoted => {
                    let run = chunk[i..].iter().position(|&c| c == b'"' || c == b'\n');
                    let end = run.map_or(chunk.len(), |r| i + r);
                    self.data.extend_from_slice(&chunk[i..end]);
                    i = end;
                    if i == chunk.len() {
                        break;
                    }
                    if chunk[i] == b'\n' {
                        self.line += 1;
                        self.data.push(b'\n');
                    } else {
                        self.state = State::QuoteInQuoted;
                    }
                }
                State::QuoteInQuoted => match b {
                    b'"' => {
                        self.data.push(b'"');
                        self.state = State::Quoted;
                    }
                    b',' => self.end_field(),
                    b'\n' => {
                        self.end_line(chunk, raw_start, i, sink)?;
                        raw_start = Some(i + 1);
                    }
                    b'\r' => self.state = State::CrAfterQuote,
                    _ => {
                        return Err(CsvError::TextAfterClosingQuote { line: self.line, field: self.ends.len() + 1 }.into())
                    }
                },
                State::CrAfterQuote => {
                    if b == b'\n' {
                        self.end_line(chunk, raw_start, i, sink)?;
                        raw_start = Some(i + 1);
                    } else {
                        return Err(CsvError::TextAfterClosingQuote { line: self.line, field: self.ends.len() + 1 }.into());
                    }
                }
                State::Cr => {
                    if b == b'\n' {
                        self.end_line(chunk, raw_start, i, sink)?;
                        raw_start = Some(i + 1);
                    } else {
                        // A lone CR is data in an unquoted field.
                        self.data.push(b'\r');
                        self.state = State::Unquoted;
                        continue;
                    }
                }
            }
            i += 1;
        }
        // The record goes on in the next chunk: keep its raw bytes so far.
        if !matches!(self.state, State::RecordStart) {
            let start = raw_start.unwrap_or(0).min(chunk.len());
            if raw_start.is_some() {
                self.raw_carry.clear();
            }
            self.raw_carry.extend_from_slice(&chunk[start..]);
            self.record_bytes = self.raw_carry.len();
            if self.record_bytes > self.limit {
                return Err(CsvError::RecordTooLarge { line: self.record_line, limit: self.limit }.into());
            }
        }
        Ok(())
    }

    /// A comma outside quotes: the field ends, the next one starts.
    #[inline]
    fn end_field(&mut self) {
        self.ends.push(self.data.len());
        self.state = State::FieldStart;
    }

    /// A newline outside quotes: the field and the record end.
    #[inline]
    fn end_line<E: From<CsvError>>(
        &mut self,
        chunk: &[u8],
        raw_start: Option<usize>,
        newline_at: usize,
        sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.ends.push(self.data.len());
        self.line += 1;
        self.end_record(chunk, raw_start, newline_at, sink)
    }

    fn end_record<E: From<CsvError>>(
        &mut self,
        chunk: &[u8],
        raw_start: Option<usize>,
        newline_at: usize,
        sink: &mut impl FnMut(RecordRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let result = match raw_start {
            Some(s) => {
                let raw = trim_line_end(&chunk[s..newline_at]);
                let raw_len = raw.len();
                if raw_len > self.limit {
                    return Err(CsvError::RecordTooLarge { line: self.record_line, limit: self.limit }.into());
                }
                self.emit(raw, sink)
            }
            None => {
                let mut carry = std::mem::take(&mut self.raw_carry);
                carry.extend_from_slice(&chunk[..newline_at]);
                if carry.len() > self.limit {
                    return Err(CsvError::RecordTooLarge { line: self.record_line, limit: self.limit }.into());
                }
                let r = self.emit(trim_line_end(&carry), sink);
                carry.clear();
                self.raw_carry = carry;
                r
            }
        };
        result
    }
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Rec {
        line: u64,
        fields: Vec<String>,
        raw: String,
    }

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<Rec>, CsvError> {
        let mut r = CsvReader::new(1 << 20);
        let mut out = Vec::new();
        let mut sink = |rec: RecordRef<'_>| -> Result<(), CsvError> {
            out.push(Rec {
                line: rec.line,
                fields: rec.fields().map(|f| String::from_utf8(f.to_vec()).unwrap()).collect(),
                raw: String::from_utf8(rec.raw.to_vec()).unwrap(),
            });
            Ok(())
        };
        for c in chunks {
            r.push(c, &mut sink)?;
        }
        r.finish(&mut sink)?;
        Ok(out)
    }

    /// Parses the input whole and split at every possible point (and byte by byte): the
    /// result must not depend on how the stream was cut.
    fn parse(input: &str) -> Result<Vec<Rec>, CsvError> {
        let b = input.as_bytes();
        let whole = parse_chunks(&[b]);
        for cut in 0..=b.len() {
            assert_eq!(parse_chunks(&[&b[..cut], &b[cut..]]), whole, "cut at {cut} of {input:?}");
        }
        let bytes: Vec<&[u8]> = b.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole, "byte by byte {input:?}");
        whole
    }

    fn fields(recs: &[Rec]) -> Vec<Vec<&str>> {
        recs.iter().map(|r| r.fields.iter().map(|s| s.as_str()).collect()).collect()
    }

    #[test]
    fn plain_and_quoted() {
        let r = parse("a,b,c\n1,\"x,y\",\"say \"\"hi\"\"\"\n").unwrap();
        assert_eq!(fields(&r), vec![vec!["a", "b", "c"], vec!["1", "x,y", "say \"hi\""]]);
        assert_eq!(r[1].raw, "1,\"x,y\",\"say \"\"hi\"\"\"");
        assert_eq!(r[1].line, 2);
    }

    #[test]
    fn crlf_and_no_final_newline() {
        let r = parse("a,b\r\n1,2\r\n3,4").unwrap();
        assert_eq!(fields(&r), vec![vec!["a", "b"], vec!["1", "2"], vec!["3", "4"]]);
        assert_eq!(r[1].raw, "1,2");
        assert_eq!(r[2].line, 3);
    }

    #[test]
    fn bom_is_dropped() {
        let r = parse("\u{feff}sku,name\nA,B\n").unwrap();
        assert_eq!(fields(&r), vec![vec!["sku", "name"], vec!["A", "B"]]);
        // a BOM-like prefix that is not a whole BOM stays
        let r = parse("\u{fefe}x\n").unwrap();
        assert_eq!(fields(&r), vec![vec!["\u{fefe}x"]]);
    }

    #[test]
    fn empty_lines_skipped_but_space_lines_kept() {
        let r = parse("a,b\n\n1,2\r\n\r\n   \n\n").unwrap();
        assert_eq!(fields(&r), vec![vec!["a", "b"], vec!["1", "2"], vec!["   "]]);
        assert_eq!(r[1].line, 3);
        assert_eq!(r[2].line, 5);
    }

    #[test]
    fn trailing_comma_is_one_more_field() {
        let r = parse("a,b\n1,2,\n").unwrap();
        assert_eq!(fields(&r)[1], vec!["1", "2", ""]);
    }

    #[test]
    fn newline_inside_quotes_counts_lines() {
        let r = parse("a,b\n\"x\ny\",2\n3,4\n").unwrap();
        assert_eq!(fields(&r)[1], vec!["x\ny", "2"]);
        assert_eq!(r[1].line, 2);
        assert_eq!(r[2].line, 4);
        assert_eq!(r[1].raw, "\"x\ny\",2");
    }

    #[test]
    fn empty_quoted_field_is_a_record() {
        let r = parse("a\n\"\"\n").unwrap();
        assert_eq!(fields(&r), vec![vec!["a"], vec![""]]);
    }

    #[test]
    fn broken_csv() {
        assert_eq!(parse("a,b\n\"open,2\n").unwrap_err(), CsvError::UnterminatedQuote { line: 2 });
        assert_eq!(parse("a,b\nx\"y,2\n").unwrap_err(), CsvError::QuoteInUnquotedField { line: 2, field: 1 });
        assert_eq!(parse("a,b\n1,\"x\"y\n").unwrap_err(), CsvError::TextAfterClosingQuote { line: 2, field: 2 });
        // Found by the fuzzer: a lone CR after a closing quote was taken as field data.
        assert_eq!(parse("a,b\n1,\"x\"\ry\n").unwrap_err(), CsvError::TextAfterClosingQuote { line: 2, field: 2 });
        assert_eq!(parse("\"\"\r\r").unwrap_err(), CsvError::TextAfterClosingQuote { line: 1, field: 1 });
        assert_eq!(parse("a\n\"x\"\r").unwrap().len(), 2, "a CR that ends the stream ends the record");
        assert_eq!(parse("a\n\"x\"\r\ny\n").unwrap().len(), 3);
    }

    #[test]
    fn record_size_is_capped() {
        let mut r = CsvReader::new(16);
        let mut sink = |_: RecordRef<'_>| -> Result<(), CsvError> { Ok(()) };
        let err = r.push(b"a\n\"0123456789012345678901234567890", &mut sink).unwrap_err();
        assert_eq!(err, CsvError::RecordTooLarge { line: 2, limit: 16 });
    }

    #[test]
    fn lone_cr_is_data() {
        let r = parse("a,b\nx\ry,2\n\rz,3\n").unwrap();
        assert_eq!(fields(&r)[1], vec!["x\ry", "2"]);
        assert_eq!(fields(&r)[2], vec!["\rz", "3"]);
        assert_eq!(r[2].raw, "\rz,3");
    }
}

/// Fuzzing the reader from the committed corpus (see the module's doc).
#[cfg(test)]
mod fuzz;
