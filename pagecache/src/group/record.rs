//! Group records: the one log record of an atomic group.
//!
//! ```text
//!  fragment header (16 bytes, kind 4 = Group, prev_count = N, pid field 0)
//!  N x ( sub_len u32 LE | sub-fragment: a Delta fragment body of sub_len bytes )
//! ```
//! A sub-fragment is exactly the body an ordinary Delta of its page would have (its pid, the
//! locations of the chain below it, oldest first, its payload), so replay treats it as one:
//! its page becomes `prev ++ [the group record]`. Sub-fragments are in staging order, so a
//! page staged twice has its older delta first, and the later one's `prev` ends with the group
//! record itself; a page whose chain names one group record k times holds its k sub-fragments
//! in that order (`nth_for`).
//!
//! The log's CRC covers the whole record: it is replayed whole or not at all.

use radix::Pid;

use crate::fragment::{self, Fragment, Kind, HEADER_LEN};
use crate::location::Location;

/// Bytes of the length word in front of each sub-fragment.
const SUB_LEN_BYTES: usize = 4;

/// Bytes of a group record with no sub-fragment yet.
pub(crate) const EMPTY_LEN: usize = HEADER_LEN;

/// Bytes one sub-fragment adds: its length word and a Delta fragment with `prev` older
/// fragments and a payload of `payload_len` bytes.
pub(crate) fn sub_len(prev: usize, payload_len: usize) -> usize {
    SUB_LEN_BYTES + fragment::fragment_len(prev, payload_len)
}

/// Fills a group record body (sized as `EMPTY_LEN` plus each sub-fragment's [`sub_len`]).
pub(crate) struct Writer<'a> {
    rest: &'a mut [u8],
    left: u32,
}

impl<'a> Writer<'a> {
    /// Starts a record of `count` sub-fragments in `out`.
    pub(crate) fn new(out: &'a mut [u8], count: u32) -> Self {
        Writer {
            rest: fragment::encode_group_header(out, count),
            left: count,
        }
    }

    /// Writes the next sub-fragment's header and `prev`; returns its payload slice of
    /// `payload_len` bytes to fill.
    pub(crate) fn sub(&mut self, pid: Pid, prev: &[Location], payload_len: usize) -> &mut [u8] {
        assert!(self.left > 0, "more sub-fragments than announced");
        assert!(
            !prev.is_empty(),
            "a staged delta always has a chain below it"
        );
        self.left -= 1;
        let len = fragment::fragment_len(prev.len(), payload_len);
        let rest = std::mem::take(&mut self.rest);
        let (word, rest) = rest.split_at_mut(SUB_LEN_BYTES);
        word.copy_from_slice(&u32::try_from(len).expect("records fit u32").to_le_bytes());
        let (sub, rest) = rest.split_at_mut(len);
        self.rest = rest;
        let payload = fragment::encode_header(sub, Kind::Delta, pid, prev);
        assert_eq!(payload.len(), payload_len, "sub-fragment sized wrongly");
        payload
    }

    /// Checks the record is exactly full.
    pub(crate) fn finish(self) {
        assert_eq!(self.left, 0, "fewer sub-fragments than announced");
        assert!(self.rest.is_empty(), "group record sized wrongly");
    }
}

/// The fragments of any record body: itself, or a Group record's sub-fragments (each a
/// validated Delta with a chain below it). The second value says whether it was a group.
pub(crate) fn decode_any(body: &[u8]) -> Result<(Vec<Fragment<'_>>, bool), String> {
    let Some((count, mut rest)) = fragment::decode_group_header(body)? else {
        return Ok((vec![fragment::decode(body)?], false));
    };
    // Each sub-fragment takes at least its length word and a header: bound the count before
    // sizing anything from it.
    if count == 0 || count as usize > rest.len() / (SUB_LEN_BYTES + HEADER_LEN) {
        return Err(format!("a group record claims {count} sub-fragments"));
    }
    let mut subs = Vec::with_capacity(count as usize);
    for i in 0..count {
        if rest.len() < SUB_LEN_BYTES {
            return Err(format!("group sub-fragment {i} is cut"));
        }
        let (word, after) = rest.split_at(SUB_LEN_BYTES);
        let len = u32::from_le_bytes(word.try_into().expect("4 bytes")) as usize;
        if len > after.len() {
            return Err(format!("group sub-fragment {i} claims {len} bytes"));
        }
        let (sub, after) = after.split_at(len);
        let frag = fragment::decode(sub).map_err(|e| format!("group sub-fragment {i}: {e}"))?;
        if frag.kind != Kind::Delta || frag.prev.is_empty() {
            return Err(format!(
                "group sub-fragment {i} is a {:?} with {} older fragments",
                frag.kind,
                frag.prev.len()
            ));
        }
        subs.push(frag);
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after a group record's last sub-fragment",
            rest.len()
        ));
    }
    Ok((subs, true))
}

/// The `nth` (from 0) fragment of `pid` among `frags` (a record's fragments).
pub(crate) fn nth_for<'f, 'a>(
    frags: &'f [Fragment<'a>],
    pid: Pid,
    nth: usize,
) -> Option<&'f Fragment<'a>> {
    frags.iter().filter(|f| f.pid == pid).nth(nth)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(w: u64) -> Location {
        Location::from_word(w | 1 << 40).unwrap()
    }

    fn pid(raw: u64) -> Pid {
        Pid::new(raw).unwrap()
    }

    /// Two pages, the second staged twice (its second delta sits on the record itself).
    fn sample() -> Vec<u8> {
        let subs: [(Pid, Vec<Location>, &[u8]); 3] = [
            (pid(3), vec![loc(10)], b"a"),
            (pid(9), vec![loc(20), loc(30)], b"bc"),
            (pid(9), vec![loc(20), loc(30), loc(99)], b""),
        ];
        let len = EMPTY_LEN
            + subs
                .iter()
                .map(|s| sub_len(s.1.len(), s.2.len()))
                .sum::<usize>();
        let mut out = vec![0u8; len];
        let mut w = Writer::new(&mut out, 3);
        for (p, prev, payload) in &subs {
            w.sub(*p, prev, payload.len()).copy_from_slice(payload);
        }
        w.finish();
        out
    }

    #[test]
    fn roundtrips_and_finds_the_nth_sub_fragment_of_a_page() {
        let body = sample();
        let (frags, group) = decode_any(&body).unwrap();
        assert!(group);
        assert_eq!(frags.len(), 3);
        assert_eq!(nth_for(&frags, pid(3), 0).unwrap().payload, b"a");
        assert_eq!(nth_for(&frags, pid(9), 0).unwrap().payload, b"bc");
        let second = nth_for(&frags, pid(9), 1).unwrap();
        assert_eq!(second.prev, [loc(20), loc(30), loc(99)]);
        assert!(nth_for(&frags, pid(9), 2).is_none());
        assert!(nth_for(&frags, pid(4), 0).is_none());
        assert!(fragment::decode(&body).is_err(), "not a single fragment");
    }

    #[test]
    fn a_single_fragment_decodes_as_itself() {
        let mut out = vec![0u8; fragment::fragment_len(1, 2)];
        fragment::encode_header(&mut out, Kind::Delta, pid(5), &[loc(1)]).copy_from_slice(b"xy");
        let (frags, group) = decode_any(&out).unwrap();
        assert!(!group);
        assert_eq!(frags[0].pid, pid(5));
    }

    #[test]
    fn rejects_every_truncation_and_malformed_counts() {
        let body = sample();
        for cut in 0..body.len() {
            assert!(decode_any(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut more = body.clone();
        more.push(0);
        assert!(decode_any(&more).is_err(), "trailing byte");
        let count_at = 4;
        for count in [0u32, 2, 4, u32::MAX] {
            let mut bad = body.clone();
            bad[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
            assert!(decode_any(&bad).is_err(), "count {count}");
        }
        let mut bad = body.clone();
        bad[8] = 1;
        assert!(decode_any(&bad).is_err(), "group record with a pid");
        // The first sub-fragment claims more bytes than there are.
        let mut bad = body.clone();
        bad[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_any(&bad).is_err(), "sub-fragment length");
        // A sub-fragment that is a Base.
        let mut bad = body;
        bad[HEADER_LEN + SUB_LEN_BYTES + 3] = Kind::Base as u8;
        assert!(decode_any(&bad).is_err(), "base sub-fragment");
    }
}
