//! The one place page payloads are encoded and decoded (bincode 2). Everything else in the
//! page cache uses fixed little-endian layouts with named offsets.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::enc::write::SizeWriter;
use bincode::{Decode, Encode};

/// Little-endian, fixed-width integers (decoding cost matters more than a few bytes), and no
/// container may claim more than the log's largest record: a corrupt length prefix can never
/// size an allocation beyond it.
type Codec = Configuration<LittleEndian, Fixint, Limit<{ logstore::MAX_RECORD_BYTES as usize }>>;

const CODEC: Codec = bincode::config::standard()
    .with_little_endian()
    .with_fixed_int_encoding()
    .with_limit::<{ logstore::MAX_RECORD_BYTES as usize }>();

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

/// Decodes a value that must occupy all of `bytes`.
pub(crate) fn decode_exact<T: Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    let (value, n) = bincode::decode_from_slice(bytes, CODEC).map_err(|e| e.to_string())?;
    if n != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the payload",
            bytes.len() - n
        ));
    }
    Ok(value)
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
}
