//! Decoding half of the checkpoint format (layout in the module docs of `checkpoint`):
//! validates before it trusts. Magic, version, CRC, reserved bits and the body length are
//! checked first; then every count is checked against the bytes that remain before anything
//! is sized from it, and every pid and location word is checked as it is read. A failure is a
//! message naming the broken fact; `load` turns it into a fallback or a corruption error.

use logstore::Lsn;
use radix::Pid;

use super::{
    Checkpoint, BODY_LEN_AT, CRC_AT, CRC_FROM, ENTRY_FIXED_LEN, FORMAT_VERSION, HEADER_LEN,
    LOCATION_LEN, LSN_AT, MAGIC, MAGIC_AT, MIN_ENTRY_LEN, NEXT_FRESH_AT, PAGE_COUNT_AT,
    RESERVED_AT, VERSION_AT,
};
use crate::location::Location;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes a whole checkpoint file.
pub(crate) fn decode(b: &[u8]) -> Result<Checkpoint, String> {
    let header = check_header(b)?;
    // Bounded by the body length, so this allocation is at most body_len / 20 entries.
    let mut pages = Vec::with_capacity(header.page_count);
    let mut at = HEADER_LEN;
    let mut previous: Option<Pid> = None;
    for index in 0..header.page_count {
        if b.len() - at < MIN_ENTRY_LEN {
            return Err(format!("entry {index} truncated at byte {at}"));
        }
        let raw = u64_at(b, at);
        let pid = Pid::new(raw).ok_or_else(|| format!("entry {index}: pid {raw} out of range"))?;
        if previous >= Some(pid) {
            return Err(format!(
                "entry {index}: pid {pid} not above the previous pid {previous:?} (unsorted or \
                 duplicate)"
            ));
        }
        if raw >= header.next_fresh {
            return Err(format!(
                "entry {index}: pid {pid} at or past next_fresh {}",
                header.next_fresh
            ));
        }
        let count = u32_at(b, at + 8) as usize;
        at += ENTRY_FIXED_LEN;
        if count == 0 {
            return Err(format!("entry {index}: page {pid} has no fragments"));
        }
        if count > (b.len() - at) / LOCATION_LEN {
            return Err(format!(
                "entry {index}: page {pid} claims {count} fragments, more than the file holds"
            ));
        }
        let mut locations = Vec::with_capacity(count);
        for _ in 0..count {
            let word = u64_at(b, at);
            let loc = Location::from_word(word).ok_or_else(|| {
                format!("entry {index}: page {pid} has a malformed location word {word:#x}")
            })?;
            locations.push(loc);
            at += LOCATION_LEN;
        }
        pages.push((pid, locations));
        previous = Some(pid);
    }
    if at != b.len() {
        return Err(format!(
            "{} bytes after the last of {} entries",
            b.len() - at,
            header.page_count
        ));
    }
    Ok(Checkpoint {
        lsn: header.lsn,
        next_fresh: header.next_fresh,
        pages,
    })
}

/// The header fields, validated against each other and the file length.
struct Header {
    lsn: Lsn,
    next_fresh: u64,
    page_count: usize,
}

fn check_header(b: &[u8]) -> Result<Header, String> {
    if b.len() < HEADER_LEN {
        return Err(format!("truncated: {} bytes, no complete header", b.len()));
    }
    if b[MAGIC_AT..VERSION_AT] != MAGIC {
        return Err("not a checkpoint file (bad magic)".into());
    }
    let version = u32_at(b, VERSION_AT);
    if version != FORMAT_VERSION {
        return Err(format!(
            "unknown format version {version} (this build reads {FORMAT_VERSION})"
        ));
    }
    let (stored, actual) = (u32_at(b, CRC_AT), crc32c::crc32c(&b[CRC_FROM..]));
    if stored != actual {
        return Err(format!(
            "CRC mismatch (stored {stored:#010x}, computed {actual:#010x}): torn or damaged"
        ));
    }
    if u32_at(b, RESERVED_AT) != 0 {
        return Err("reserved header field is not zero".into());
    }
    let body_len = u64_at(b, BODY_LEN_AT);
    let actual_body = (b.len() - HEADER_LEN) as u64;
    if body_len != actual_body {
        return Err(format!(
            "header says {body_len} body bytes, the file holds {actual_body}"
        ));
    }
    let next_fresh = u64_at(b, NEXT_FRESH_AT);
    if next_fresh > Pid::MAX.get() + 1 {
        return Err(format!("next_fresh {next_fresh} past the largest page id"));
    }
    let page_count = u64_at(b, PAGE_COUNT_AT);
    if page_count > actual_body / MIN_ENTRY_LEN as u64 {
        return Err(format!(
            "{page_count} pages cannot fit in {actual_body} body bytes"
        ));
    }
    Ok(Header {
        lsn: Lsn(u64_at(b, LSN_AT)),
        next_fresh,
        page_count: usize::try_from(page_count).expect("bounded by the file length"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::encode::encode;

    fn loc(offset: u64, len: u64) -> Location {
        Location::from_word(len << 39 | offset).unwrap()
    }

    fn pid(raw: u64) -> Pid {
        Pid::new(raw).unwrap()
    }

    fn small() -> Checkpoint {
        Checkpoint {
            lsn: Lsn(0x1234),
            next_fresh: 10,
            pages: vec![
                (pid(0), vec![loc(100, 40)]),
                (pid(3), vec![loc(200, 50), loc(300, 60), loc(400, 70)]),
                (pid(9), vec![loc(500, 80)]),
            ],
        }
    }

    /// A file with arbitrary (unvalidated) entries and a correct CRC and body length, so the
    /// semantic checks behind the CRC are what is tested.
    fn raw(next_fresh: u64, page_count: u64, entries: &[(u64, u32, &[u64])]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[MAGIC_AT..VERSION_AT].copy_from_slice(&MAGIC);
        b[VERSION_AT..CRC_AT].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[NEXT_FRESH_AT..PAGE_COUNT_AT].copy_from_slice(&next_fresh.to_le_bytes());
        b[PAGE_COUNT_AT..BODY_LEN_AT].copy_from_slice(&page_count.to_le_bytes());
        for (pid, count, words) in entries {
            b.extend_from_slice(&pid.to_le_bytes());
            b.extend_from_slice(&count.to_le_bytes());
            for w in *words {
                b.extend_from_slice(&w.to_le_bytes());
            }
        }
        reseal(&mut b);
        b
    }

    /// Fixes the body length and CRC after a test edit.
    fn reseal(b: &mut [u8]) {
        let body = (b.len() - HEADER_LEN) as u64;
        b[BODY_LEN_AT..HEADER_LEN].copy_from_slice(&body.to_le_bytes());
        let crc = crc32c::crc32c(&b[CRC_FROM..]);
        b[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_le_bytes());
    }

    fn rejects(b: &[u8], needle: &str) {
        let err = decode(b).expect_err(needle);
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    }

    #[test]
    fn roundtrips_empty_and_small() {
        let empty = Checkpoint {
            lsn: Lsn(0),
            next_fresh: 0,
            pages: vec![],
        };
        let b = encode(&empty);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(decode(&b), Ok(empty));
        let b = encode(&small());
        assert_eq!(b.len(), super::super::encode::encoded_len(&small()));
        assert_eq!(decode(&b), Ok(small()));
        // The raw builder agrees with the encoder byte for byte.
        let words = |c: &Checkpoint, i: usize| -> Vec<u64> {
            c.pages[i].1.iter().map(|l| l.to_word()).collect()
        };
        let c = small();
        let mut built = raw(
            10,
            3,
            &[
                (0, 1, &words(&c, 0)),
                (3, 3, &words(&c, 1)),
                (9, 1, &words(&c, 2)),
            ],
        );
        built[LSN_AT..NEXT_FRESH_AT].copy_from_slice(&0x1234u64.to_le_bytes());
        reseal(&mut built);
        assert_eq!(built, encode(&c));
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_rejected() {
        let b = encode(&small());
        for i in 0..b.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut bad = b.clone();
                bad[i] ^= mask;
                assert!(decode(&bad).is_err(), "byte {i} ^ {mask:#x} accepted");
            }
        }
        for len in 0..b.len() {
            assert!(decode(&b[..len]).is_err(), "truncation to {len} accepted");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode(&longer).is_err(), "an extra byte accepted");
    }

    #[test]
    fn rejects_bad_header_fields_behind_a_valid_crc() {
        let mut b = encode(&small());
        b[VERSION_AT..CRC_AT].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        reseal(&mut b);
        rejects(&b, "unknown format version");

        let mut b = encode(&small());
        b[RESERVED_AT] = 1;
        reseal(&mut b);
        rejects(&b, "reserved");

        let mut b = encode(&small());
        b[BODY_LEN_AT..HEADER_LEN].copy_from_slice(&1u64.to_le_bytes());
        let crc = crc32c::crc32c(&b[CRC_FROM..]);
        b[CRC_AT..CRC_FROM].copy_from_slice(&crc.to_le_bytes());
        rejects(&b, "body bytes");

        rejects(&raw(Pid::MAX.get() + 2, 0, &[]), "past the largest page id");
        assert!(decode(&raw(Pid::MAX.get() + 1, 0, &[])).is_ok());
    }

    #[test]
    fn rejects_counts_beyond_the_file_without_allocating() {
        let w = loc(1, 1).to_word();
        rejects(&raw(10, u64::MAX, &[(1, 1, &[w])]), "cannot fit");
        rejects(&raw(10, 2, &[(1, 1, &[w])]), "cannot fit");
        rejects(
            &raw(10, 1, &[(1, u32::MAX, &[w])]),
            "more than the file holds",
        );
        rejects(&raw(10, 1, &[(1, 2, &[w])]), "more than the file holds");
        rejects(&raw(10, 1, &[(1, 1, &[w]), (2, 1, &[w])]), "bytes after");
        // The page count fits the body, but the second entry lacks its location word.
        rejects(&raw(10, 2, &[(1, 2, &[w, w]), (2, 1, &[])]), "truncated");
    }

    #[test]
    fn rejects_malformed_entries() {
        let w = loc(1, 1).to_word();
        rejects(&raw(10, 1, &[(1, 0, &[0])]), "no fragments");
        rejects(&raw(10, 2, &[(3, 1, &[w]), (2, 1, &[w])]), "unsorted");
        rejects(&raw(10, 2, &[(3, 1, &[w]), (3, 1, &[w])]), "duplicate");
        rejects(&raw(10, 1, &[(10, 1, &[w])]), "next_fresh");
        let past_max = Pid::MAX.get() + 1;
        rejects(&raw(past_max, 1, &[(past_max, 1, &[w])]), "out of range");
        rejects(&raw(10, 1, &[(1, 1, &[1 << 62 | w])]), "malformed location");
        rejects(&raw(10, 1, &[(1, 1, &[5])]), "malformed location");
    }

    #[test]
    #[should_panic(expected = "not sorted")]
    fn encoding_unsorted_pages_is_a_bug() {
        let mut c = small();
        c.pages.swap(0, 1);
        encode(&c);
    }

    #[test]
    #[should_panic(expected = "no fragments")]
    fn encoding_a_page_without_fragments_is_a_bug() {
        let mut c = small();
        c.pages[1].1.clear();
        encode(&c);
    }

    #[test]
    #[should_panic(expected = "next_fresh")]
    fn encoding_a_pid_past_next_fresh_is_a_bug() {
        let mut c = small();
        c.next_fresh = 9;
        encode(&c);
    }
}
