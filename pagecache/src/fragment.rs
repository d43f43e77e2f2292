//! Page fragments: the body of every log record the page cache writes.
//!
//! ```text
//!  0      2    3    4            8          16
//!  +------+----+----+------------+----------+---------------------------+--------- - -
//!  |magic |ver |kind| prev_count |   pid    | prev: prev_count x u64    | payload
//!  +------+----+----+------------+----------+---------------------------+--------- - -
//!  magic = 0x4650 (u16 LE), ver = FRAGMENT_VERSION, kind: 1 Base, 2 Delta, 3 Free, 4 Group.
//!  prev: the Location words of the page's older fragments (Delta only; oldest first).
//!  payload: the codec encoding of the base or delta; empty for Free.
//! ```
//! Every record is self-contained for replay: a Base makes the page `[itself]`, a Delta makes
//! it `prev ++ [itself]`, a Free removes it. So replaying a record over any older state of the
//! page gives the state right after the record (fuzzy checkpoints rely on this).
//!
//! A Group record (an atomic group's deltas on several pages, `group/record.rs`) has the same
//! 16-byte header with `prev_count` = the number of sub-fragments and the pid field zero,
//! followed by the sub-fragments, each a Delta fragment as above behind its u32 length. Each
//! sub-fragment makes its page `prev ++ [the group record]`, in order.
//!
//! The log's CRC covers the whole body; the checks here catch records of another layer or a
//! bug, and lengths are validated before anything is sized from them.

use radix::Pid;

use crate::location::Location;

const MAGIC: u16 = 0x4650;
/// Format version of fragment bodies. 1: initial layout. 2: adds Group records (kind 4);
/// version-1 bodies are still read.
pub(crate) const FRAGMENT_VERSION: u8 = 2;
/// The oldest version still read.
const OLDEST_READ_VERSION: u8 = 1;
/// Bytes before the `prev` list.
pub(crate) const HEADER_LEN: usize = 16;
const MAGIC_AT: usize = 0;
const VERSION_AT: usize = 2;
const KIND_AT: usize = 3;
const PREV_COUNT_AT: usize = 4;
const PID_AT: usize = 8;
const _: () = assert!(PID_AT + 8 == HEADER_LEN);

/// What a fragment does to its page.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Base = 1,
    Delta = 2,
    Free = 3,
    /// Several pages' deltas in one record (only as a whole record, never a sub-fragment).
    Group = 4,
}

/// A decoded fragment header; `payload` borrows the record body.
#[derive(Debug)]
pub(crate) struct Fragment<'a> {
    pub(crate) kind: Kind,
    pub(crate) pid: Pid,
    pub(crate) prev: Vec<Location>,
    pub(crate) payload: &'a [u8],
}

/// Bytes of a fragment with `prev` older fragments and a payload of `payload_len` bytes.
pub(crate) fn fragment_len(prev: usize, payload_len: usize) -> usize {
    HEADER_LEN + prev * 8 + payload_len
}

/// Writes the header and `prev` list into `out`; returns the payload slice to fill.
pub(crate) fn encode_header<'a>(
    out: &'a mut [u8],
    kind: Kind,
    pid: Pid,
    prev: &[Location],
) -> &'a mut [u8] {
    out[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&MAGIC.to_le_bytes());
    out[VERSION_AT] = FRAGMENT_VERSION;
    out[KIND_AT] = kind as u8;
    let count = u32::try_from(prev.len()).expect("fragment prev list fits u32");
    out[PREV_COUNT_AT..PREV_COUNT_AT + 4].copy_from_slice(&count.to_le_bytes());
    out[PID_AT..PID_AT + 8].copy_from_slice(&pid.get().to_le_bytes());
    let mut at = HEADER_LEN;
    for loc in prev {
        out[at..at + 8].copy_from_slice(&loc.to_word().to_le_bytes());
        at += 8;
    }
    &mut out[at..]
}

/// Writes the header of a Group record of `count` sub-fragments; returns the rest of `out`.
pub(crate) fn encode_group_header(out: &mut [u8], count: u32) -> &mut [u8] {
    out[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&MAGIC.to_le_bytes());
    out[VERSION_AT] = FRAGMENT_VERSION;
    out[KIND_AT] = Kind::Group as u8;
    out[PREV_COUNT_AT..PREV_COUNT_AT + 4].copy_from_slice(&count.to_le_bytes());
    out[PID_AT..PID_AT + 8].fill(0);
    &mut out[HEADER_LEN..]
}

/// A record body's header fields, validated: kind, the count word, the pid word.
fn decode_header(body: &[u8]) -> Result<(Kind, u32, u64), String> {
    if body.len() < HEADER_LEN {
        return Err(format!("fragment of {} bytes has no header", body.len()));
    }
    let u16_at = |at: usize| u16::from_le_bytes([body[at], body[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    if u16_at(MAGIC_AT) != MAGIC {
        return Err("not a page fragment (bad magic)".into());
    }
    let version = body[VERSION_AT];
    if !(OLDEST_READ_VERSION..=FRAGMENT_VERSION).contains(&version) {
        return Err(format!("unknown fragment version {version}"));
    }
    let kind = match body[KIND_AT] {
        1 => Kind::Base,
        2 => Kind::Delta,
        3 => Kind::Free,
        4 if version >= 2 => Kind::Group,
        k => return Err(format!("unknown fragment kind {k} (version {version})")),
    };
    Ok((kind, u32_at(PREV_COUNT_AT), u64_at(PID_AT)))
}

/// If `body` is a Group record: its sub-fragment count and the bytes after its header.
/// `Ok(None)` for any other well-formed header.
pub(crate) fn decode_group_header(body: &[u8]) -> Result<Option<(u32, &[u8])>, String> {
    let (kind, count, pid_word) = decode_header(body)?;
    if kind != Kind::Group {
        return Ok(None);
    }
    if pid_word != 0 {
        return Err(format!("a group record names page {pid_word}"));
    }
    Ok(Some((count, &body[HEADER_LEN..])))
}

/// Decodes a fragment body, validating every field before use.
pub(crate) fn decode(body: &[u8]) -> Result<Fragment<'_>, String> {
    let (kind, count, pid_word) = decode_header(body)?;
    if kind == Kind::Group {
        return Err("a group record where one fragment was expected".into());
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let pid = Pid::new(pid_word).ok_or("fragment pid out of range")?;
    let count = count as usize;
    if count > (body.len() - HEADER_LEN) / 8 {
        return Err(format!("fragment claims {count} older fragments"));
    }
    if kind != Kind::Delta && count != 0 {
        return Err(format!("a {kind:?} fragment lists older fragments"));
    }
    let prev = (0..count)
        .map(|i| Location::from_word(u64_at(HEADER_LEN + i * 8)))
        .collect::<Option<Vec<_>>>()
        .ok_or("malformed older-fragment location")?;
    let payload = &body[HEADER_LEN + count * 8..];
    if kind == Kind::Free && !payload.is_empty() {
        return Err("a Free fragment carries a payload".into());
    }
    Ok(Fragment {
        kind,
        pid,
        prev,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(w: u64) -> Location {
        Location::from_word(w | 1 << 39).unwrap()
    }

    #[test]
    fn roundtrips_a_delta() {
        let prev = [loc(10), loc(20)];
        let mut out = vec![0u8; fragment_len(2, 3)];
        let payload = encode_header(&mut out, Kind::Delta, Pid::new(7).unwrap(), &prev);
        payload.copy_from_slice(b"xyz");
        let f = decode(&out).unwrap();
        assert_eq!(f.kind, Kind::Delta);
        assert_eq!(f.pid, Pid::new(7).unwrap());
        assert_eq!(f.prev, prev);
        assert_eq!(f.payload, b"xyz");
    }

    #[test]
    fn rejects_malformed_headers() {
        let mut out = vec![0u8; fragment_len(0, 0)];
        encode_header(&mut out, Kind::Free, Pid::new(1).unwrap(), &[]);
        assert!(decode(&out).is_ok());
        assert!(decode(&out[..HEADER_LEN - 1]).is_err(), "short");
        let mut bad = out.clone();
        bad[KIND_AT] = 9;
        assert!(decode(&bad).is_err(), "kind");
        let mut bad = out.clone();
        bad[PREV_COUNT_AT] = 200;
        assert!(decode(&bad).is_err(), "prev count beyond the body");
        let mut bad = out.clone();
        bad[MAGIC_AT] ^= 1;
        assert!(decode(&bad).is_err(), "magic");
        let mut bad = out;
        bad.push(1);
        assert!(decode(&bad).is_err(), "free with payload");
        assert!(decode(&[0u8; 64]).is_err(), "zeroes");
    }
}
