//! Fast path of [`Args::fields`](crate::Args::fields): finds the byte ranges of the wanted
//! members of a JSON object without tokenising the values it skips. Returns `None` on anything
//! unexpected (an escaped key, malformed text); the caller then takes the full serde path, which
//! reports errors properly. Never panics: every index goes through `get`.

fn ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// Index of the first `"` or `\\` at or after `i`, eight bytes at a time (wasm has 64-bit
/// integers but, without the SIMD proposal, no vector scan).
fn quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        let q = w ^ (LO * u64::from(b'"'));
        let s = w ^ (LO * u64::from(b'\\'));
        // A zero byte in `q` or `s` is a match; the lowest flagged byte is exact.
        let m = ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s)) & HI;
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\')
        .map(|p| i + p)
}

/// `i` is just after an opening quote; returns the index just after the closing one.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let at = quote_or_backslash(b, i)?;
        if *b.get(at)? == b'"' {
            return Some(at + 1);
        }
        i = at + 2;
    }
}

/// Skips one value starting at `i` (no leading whitespace); returns the index just after it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = i;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i + 1)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        // A number, `true`, `false` or `null`: up to the next delimiter (at least one byte).
        _ => {
            let start = i;
            let mut i = i;
            while let Some(c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                i += 1;
            }
            (i > start).then_some(i)
        }
    }
}

/// Byte ranges of the members `names` of the object `text` into `found` (same length; all none
/// when `text` is `null`). Not generic, so that it is compiled once, in this crate.
pub(crate) fn member_ranges(
    text: &str,
    names: &[&str],
    found: &mut [Option<(usize, usize)>],
) -> Option<()> {
    let b = text.as_bytes();
    let mut i = ws(b, 0);
    if b.get(i..i + 4) == Some(b"null") {
        return (ws(b, i + 4) == b.len()).then_some(());
    }
    if *b.get(i)? != b'{' {
        return None;
    }
    i = ws(b, i + 1);
    if *b.get(i)? == b'}' {
        return (ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        if *b.get(i)? != b'"' {
            return None;
        }
        let ks = i + 1;
        let ke = quote_or_backslash(b, ks)?;
        if *b.get(ke)? != b'"' {
            return None; // escaped key: leave it to serde
        }
        let key = b.get(ks..ke)?;
        i = ws(b, ke + 1);
        if *b.get(i)? != b':' {
            return None;
        }
        let vs = ws(b, i + 1);
        let ve = skip_value(b, vs)?;
        if let Some(k) = names.iter().position(|n| n.as_bytes() == key)
            && let Some(slot) = found.get_mut(k)
        {
            *slot = Some((vs, ve));
        }
        i = ws(b, ve);
        match *b.get(i)? {
            b',' => i = ws(b, i + 1),
            b'}' => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}
