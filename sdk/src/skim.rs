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

/// Bit `k` set when byte `k` of `block` is `x` or `y`: one 16-byte vector compare with wasm
/// SIMD (plugins are built with `+simd128`, see `.ci/build-plugins`) or SSE2 (native builds, so
/// the SDK's own tests run the same block logic), a plain loop elsewhere.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn mask2(block: &[u8; 16], x: u8, y: u8) -> u32 {
    use core::arch::wasm32::{u8x16_bitmask, u8x16_eq, u8x16_splat, v128, v128_load, v128_or};
    // SAFETY: `block` is 16 readable bytes; `v128_load` has no alignment requirement.
    let v = unsafe { v128_load(block.as_ptr().cast::<v128>()) };
    let m = v128_or(u8x16_eq(v, u8x16_splat(x)), u8x16_eq(v, u8x16_splat(y)));
    u32::from(u8x16_bitmask(m))
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn mask2(block: &[u8; 16], x: u8, y: u8) -> u32 {
    use core::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of the x86_64 baseline; `block` is 16 readable bytes and
    // `_mm_loadu_si128` has no alignment requirement.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        let m = _mm_or_si128(
            _mm_cmpeq_epi8(v, _mm_set1_epi8(x as i8)),
            _mm_cmpeq_epi8(v, _mm_set1_epi8(y as i8)),
        );
        _mm_movemask_epi8(m) as u32
    }
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
#[inline(always)]
fn mask2(block: &[u8; 16], x: u8, y: u8) -> u32 {
    swar_mask(block, x, y)
}

/// Bit `k` set when byte `k` of `block` is `"` or `\\`.
#[inline(always)]
fn special_mask(block: &[u8; 16]) -> u32 {
    mask2(block, b'"', b'\\')
}

/// [`mask2`] without vectors (wasm built without `+simd128`): two 64-bit words, exact
/// zero-byte detection (no false positives from borrows), high bits gathered by a multiply.
#[cfg_attr(
    any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        all(target_arch = "x86_64", not(test))
    ),
    allow(dead_code)
)]
#[inline(always)]
fn swar_mask(block: &[u8; 16], x: u8, y: u8) -> u32 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // High bit of each byte of `x` that is zero.
    let zero = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    // Bits 7, 15, .., 63 to bits 0..8.
    let gather = |m: u64| ((m >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
    let word = |k: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[k..k + 8]);
        let w = u64::from_le_bytes(w);
        gather(zero(w ^ (ONES * u64::from(x))) | zero(w ^ (ONES * u64::from(y))))
    };
    word(0) | word(8) << 8
}

/// Index of the first `"` or `\\` at or after `i`, sixteen bytes at a time. The last partial
/// block is read as the text's last 16 bytes (overlapping bytes already scanned, masked off), so
/// only texts shorter than 16 bytes take the byte loop.
#[inline(always)]
fn quote_or_backslash(b: &[u8], mut i: usize) -> Option<usize> {
    while let Some(block) = b.get(i..i + 16).and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
        let m = special_mask(block);
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    if i >= b.len() {
        return None;
    }
    let start = b.len().checked_sub(16);
    match start.and_then(|s| Some((s, <&[u8; 16]>::try_from(b.get(s..)?).ok()?))) {
        Some((s, block)) => {
            // `i` is in the last 16 bytes: drop the bits of bytes before it.
            let m = special_mask(block) >> (i - s);
            (m != 0).then(|| i + m.trailing_zeros() as usize)
        }
        None => b
            .get(i..)?
            .iter()
            .position(|&c| c == b'"' || c == b'\\')
            .map(|p| i + p),
    }
}

/// `i` is just after an opening quote; returns the index just after the closing one.
#[inline(always)]
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

/// Quote positions of a text, 64 bytes at a time: each block's quote bitmap is computed once
/// (four vector compares) and every "next quote" is a mask and a trailing-zero count. Gives up
/// (none) at the first block holding a backslash: then every quote is a real one and strings are
/// exactly the spans between successive quotes.
struct Quotes<'a> {
    b: &'a [u8],
    /// Start of the current block.
    base: usize,
    /// Quote bits of the current block.
    mask: u64,
}

impl<'a> Quotes<'a> {
    fn new(b: &'a [u8]) -> Option<Quotes<'a>> {
        let mut q = Quotes {
            b,
            base: 0,
            mask: 0,
        };
        q.mask = q.block(0)?;
        Some(q)
    }

    /// Quote bits of the 64 bytes at `base` (past the end: none); none if any is a backslash.
    #[inline(always)]
    fn block(&self, base: usize) -> Option<u64> {
        let mut pad = [b' '; 64];
        let bytes: &[u8; 64] = match self.b.get(base..base + 64) {
            Some(full) => full.try_into().ok()?,
            None => {
                let rest = self.b.get(base..)?;
                pad.get_mut(..rest.len())?.copy_from_slice(rest);
                &pad
            }
        };
        let mut quotes = 0u64;
        let mut backslashes = 0u32;
        for (k, chunk) in bytes.chunks_exact(16).enumerate() {
            let chunk: &[u8; 16] = chunk.try_into().ok()?;
            quotes |= u64::from(mask2(chunk, b'"', b'"')) << (16 * k);
            backslashes |= mask2(chunk, b'\\', b'\\');
        }
        (backslashes == 0).then_some(quotes)
    }

    /// The first quote at or after `pos` (never before the current block).
    #[inline(always)]
    fn next(&mut self, pos: usize) -> Option<usize> {
        loop {
            // `pos` before the block (the block was entered by an earlier scan): all of it.
            let shift = pos.saturating_sub(self.base);
            if shift < 64 {
                let m = self.mask & (u64::MAX << shift);
                if m != 0 {
                    return Some(self.base + m.trailing_zeros() as usize);
                }
            }
            self.base += 64;
            if self.base >= self.b.len() {
                return None;
            }
            self.mask = self.block(self.base)?;
        }
    }
}

/// [`member_ranges`] for the compact text serde_json writes (no whitespace, no backslash): none
/// on anything else, and the caller takes the general path. Strings are found through [`Quotes`];
/// nested values and scalars through [`skip_value`].
fn compact_member_ranges(
    b: &[u8],
    names: &[&str],
    found: &mut [Option<(usize, usize)>],
) -> Option<()> {
    if b.first() != Some(&b'{') || b.get(1) == Some(&b'}') {
        return None;
    }
    let mut q = Quotes::new(b)?;
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let ke = q.next(i + 1)?;
        let key = b.get(i + 1..ke)?;
        if b.get(ke + 1) != Some(&b':') {
            return None;
        }
        let vs = ke + 2;
        let ve = if b.get(vs) == Some(&b'"') {
            q.next(vs + 1)? + 1
        } else {
            skip_value(b, vs)?
        };
        for (n, slot) in names.iter().zip(found.iter_mut()) {
            if n.len() == key.len() && n.as_bytes() == key {
                *slot = Some((vs, ve));
                break;
            }
        }
        match b.get(ve) {
            Some(b',') => i = ve + 1,
            Some(b'}') if ve + 1 == b.len() => return Some(()),
            _ => return None,
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
    if compact_member_ranges(b, names, found).is_some() {
        return Some(());
    }
    found.iter_mut().for_each(|f| *f = None);
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
        // Most members are strings: skip those here rather than through `skip_value`.
        let ve = if b.get(vs) == Some(&b'"') {
            skip_string(b, vs + 1)?
        } else {
            skip_value(b, vs)?
        };
        // The first wanted name equal to the key (lengths compared first: most keys differ).
        for (n, slot) in names.iter().zip(found.iter_mut()) {
            if n.len() == key.len() && n.as_bytes() == key {
                *slot = Some((vs, ve));
                break;
            }
        }
        i = ws(b, ve);
        match *b.get(i)? {
            b',' => i = ws(b, i + 1),
            b'}' => return (ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_mask_is_exact() {
        for round in 0..2000u32 {
            let mut block = [0u8; 16];
            for (k, c) in block.iter_mut().enumerate() {
                let r = (round.wrapping_mul(2_654_435_761) >> (k % 24)) ^ (k as u32 * 7);
                *c = [b'"', b'\\', b'#', b']', b'!', 0, 1, 0xff, b'a'][(r % 9) as usize];
            }
            let want = block
                .iter()
                .enumerate()
                .filter(|(_, c)| matches!(c, b'"' | b'\\'))
                .fold(0u32, |m, (k, _)| m | 1 << k);
            assert_eq!(swar_mask(&block, b'"', b'\\'), want, "{block:?}");
            assert_eq!(special_mask(&block), want, "{block:?}");
        }
    }

    #[test]
    fn block_scan_agrees_with_a_byte_loop() {
        // Every length 0..70 and start offset, quotes and backslashes at every position
        // (first, last, in the overlapping tail block, none at all).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for len in 0..70 {
            for round in 0..40 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        match seed % (3 + round) {
                            0 => b'"',
                            1 => b'\\',
                            _ => b'a' + (seed >> 8) as u8 % 26,
                        }
                    })
                    .collect();
                for i in 0..=len + 1 {
                    let want = text
                        .get(i..)
                        .and_then(|t| t.iter().position(|&c| c == b'"' || c == b'\\'))
                        .map(|p| i + p);
                    assert_eq!(quote_or_backslash(&text, i), want, "len {len} from {i}");
                }
            }
        }
    }
}

#[cfg(test)]
mod compact_tests {
    use super::*;

    #[test]
    fn compact_path_takes_serde_json_text() {
        let long = "a value of more than sixty-four bytes, to cross a block boundary for sure";
        let text = serde_json::json!({"a": "x", "long_key_name_here": long,
            "n": [1, {"k": "v"}], "b": 2, "email": "e@x"})
        .to_string();
        let mut found = [None; 2];
        assert!(compact_member_ranges(text.as_bytes(), &["email", "n"], &mut found).is_some());
        let got: Vec<&str> = found
            .iter()
            .map(|r| r.map_or("", |(s, e)| &text[s..e]))
            .collect();
        assert_eq!(got, [r#""e@x""#, r#"[1,{"k":"v"}]"#]);
        // A backslash anywhere in a scanned block, or whitespace: the general path's job.
        let escaped = serde_json::json!({"a": "q\"", "email": "e"}).to_string();
        assert!(compact_member_ranges(escaped.as_bytes(), &["email"], &mut [None]).is_none());
        assert!(compact_member_ranges(b"{\"a\": 1}", &["a"], &mut [None]).is_none());
    }
}
