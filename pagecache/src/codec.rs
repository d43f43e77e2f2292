//! The one place page payloads are encoded and decoded (bincode 2). Everything else in the
//! page cache uses fixed little-endian layouts with named offsets.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::enc::write::SizeWriter;
use bincode::{Decode, Encode};

/// Little-endian, fixed-width integers (decoding cost matters more than a few bytes), and no
/// container may claim more than the log's largest record. Encoding only: decoding uses the
/// tighter, input-sized limits of [`decode_exact`].
type Codec = Configuration<LittleEndian, Fixint, Limit<{ logstore::MAX_RECORD_BYTES as usize }>>;

const CODEC: Codec = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<{ logstore::MAX_RECORD_BYTES as usize }>();

/// In-memory bytes a decode may claim per encoded byte. bincode claims `len * size_of::<T>()`
/// before it allocates a container of `len` elements (and a payload's own bytes before it
/// copies them); every element of the page types encodes to at least one byte and is at most
/// 64 bytes in memory (the tree's largest element, a batch entry, is exactly that), so a valid
/// payload claims at most 65 times its length. Twice that leaves room.
const CLAIM_PER_BYTE: usize = 128;

/// Input sizes the decode limit is rounded up to (it is a const generic): small inputs get a
/// small limit, so a corrupt length prefix in a few bytes can allocate at most
/// `CLAIM_PER_BYTE` times the bucket, never the 1 GiB the encoder allows.
const DECODE_BUCKETS: [usize; 4] = [4 << 10, 64 << 10, 1 << 20, crate::MAX_RECORD_LEN as usize];

/// Bytes `value` encodes to.
pub(crate) fn encoded_len<T: Encode>(value: &T) -> usize {
    let mut size = SizeWriter::default();
    bincode::encode_into_writer(value, &mut size, CODEC).expect("sizing cannot fail");
    size.bytes_written
}

/// Encodes `value` into exactly `out` (sized by [`encoded_len`]).
pub(crate) fn encode_into<T: Encode>(value: &T, out: &mut [u8]) {
    let n = bincode::encode_into_slice(value, out, CODEC).expect("slice sized by encoded_len");
    assert_eq!(
        n,
        out.len(),
        "encoding length changed between sizing and writing"
    );
}

/// Decodes a value that must occupy all of `bytes`. The claim limit scales with `bytes.len()`
/// (see [`CLAIM_PER_BYTE`]): a corrupt length prefix is an error before it sizes an allocation
/// beyond a small multiple of the input.
pub(crate) fn decode_exact<T: Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    const B: [usize; 4] = DECODE_BUCKETS;
    const K: usize = CLAIM_PER_BYTE;
    let (value, n) = match bytes.len() {
        len if len <= B[0] => decode_limited::<T, { B[0] * K }>(bytes),
        len if len <= B[1] => decode_limited::<T, { B[1] * K }>(bytes),
        len if len <= B[2] => decode_limited::<T, { B[2] * K }>(bytes),
        len if len <= B[3] => decode_limited::<T, { B[3] * K }>(bytes),
        _ => bincode::decode_from_slice(bytes, CODEC),
    }
    .map_err(|e| e.to_string())?;
    if n != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the payload",
            bytes.len() - n
        ));
    }
    Ok(value)
}

fn decode_limited<T: Decode<()>, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<LIMIT>();
    bincode::decode_from_slice(bytes, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_exact_length() {
        let v: Vec<(u64, Vec<u8>)> = vec![(1, b"ab".to_vec()), (2, vec![])];
        let mut out = vec![0u8; encoded_len(&v)];
        encode_into(&v, &mut out);
        assert_eq!(decode_exact::<Vec<(u64, Vec<u8>)>>(&out).unwrap(), v);
        out.push(0);
        assert!(decode_exact::<Vec<(u64, Vec<u8>)>>(&out).is_err());
    }

    #[test]
    fn a_huge_length_prefix_is_an_error_not_an_allocation() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1, 2, 3]);
        assert!(decode_exact::<Vec<u64>>(&bytes).is_err());
    }

    /// Found by the `page_record` fuzz target: a 58-byte delta whose key length prefix said
    /// 1 GiB made the decoder allocate 1 GiB before it noticed the input was short (the limit
    /// was the log's largest record, whatever the input's size). Now the claim fails first.
    #[test]
    fn a_length_prefix_beyond_the_input_is_refused_before_allocating() {
        for claimed in [1u64 << 20, 1 << 29, (1 << 30) - 8] {
            let mut bytes = claimed.to_le_bytes().to_vec();
            bytes.extend_from_slice(b"key-0127");
            let err = decode_exact::<Vec<u8>>(&bytes).unwrap_err();
            assert!(err.contains("LimitExceeded"), "{claimed}: {err}");
            let err = decode_exact::<Vec<(u64, Vec<u8>)>>(&bytes).unwrap_err();
            assert!(err.contains("LimitExceeded"), "{claimed}: {err}");
        }
    }

    /// The densest valid payloads still decode at every bucket edge: empty byte strings
    /// (8 encoded bytes each in this test's `Vec<Vec<u8>>`, 24 in memory) and pairs
    /// with an empty option (17 encoded, 48 in memory).
    #[test]
    fn dense_payloads_decode_at_every_bucket_edge() {
        for bucket in DECODE_BUCKETS {
            let strings: Vec<Vec<u8>> = vec![Vec::new(); (bucket - 8) / 8];
            let mut out = vec![0u8; encoded_len(&strings)];
            encode_into(&strings, &mut out);
            assert!(out.len() <= bucket);
            assert_eq!(
                decode_exact::<Vec<Vec<u8>>>(&out).unwrap().len(),
                strings.len()
            );
            let pairs: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![(Vec::new(), None); (bucket - 8) / 9];
            let mut out = vec![0u8; encoded_len(&pairs)];
            encode_into(&pairs, &mut out);
            assert!(out.len() <= bucket);
            assert_eq!(
                decode_exact::<Vec<(Vec<u8>, Option<Vec<u8>>)>>(&out)
                    .unwrap()
                    .len(),
                pairs.len()
            );
        }
    }
}
