//! [`Value`]: the byte strings the tree hands out. Small ones live inline (no allocation),
//! larger ones are shared (`Arc<[u8]>`), so cloning is always cheap.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use bincode::de::{BorrowDecoder, Decoder};
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};

/// Bytes stored inline, without a heap allocation.
const INLINE_CAP: usize = 30;

/// An immutable byte string: a key or a value. Dereferences to `[u8]`.
#[derive(Clone)]
pub struct Value(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE_CAP] },
    Shared(Arc<[u8]>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 32);
const _: () = assert!(INLINE_CAP <= u8::MAX as usize);

impl Value {
    /// The empty value.
    pub const EMPTY: Value = Value(Repr::Inline {
        len: 0,
        buf: [0; INLINE_CAP],
    });

    /// Copies `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Value {
        if bytes.len() <= INLINE_CAP {
            let mut buf = [0; INLINE_CAP];
            buf[..bytes.len()].copy_from_slice(bytes);
            Value(Repr::Inline {
                len: bytes.len() as u8,
                buf,
            })
        } else {
            Value(Repr::Shared(Arc::from(bytes)))
        }
    }

    /// Heap bytes this value owns (0 inline; the shared allocation with its counters).
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            // Two reference counts precede the bytes; the allocator rounds to 8.
            Repr::Shared(a) => (16 + a.len()).next_multiple_of(8),
        }
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..*len as usize],
            Repr::Shared(a) => a,
        }
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for Value {
    fn from(b: &[u8]) -> Value {
        Value::copy_from(b)
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(b: &[u8; N]) -> Value {
        Value::copy_from(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::copy_from(s.as_bytes())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        if v.len() <= INLINE_CAP {
            Value::copy_from(&v)
        } else {
            Value(Repr::Shared(Arc::from(v)))
        }
    }
}

impl From<Value> for Vec<u8> {
    fn from(v: Value) -> Vec<u8> {
        v.to_vec()
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        **self == **other
    }
}
impl Eq for Value {}

impl PartialEq<[u8]> for Value {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Value {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Value {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Value {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<u8>> for Value {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Value) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Value {
    fn cmp(&self, other: &Value) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => write!(f, "{s:?}"),
            _ => write!(f, "{:?}", &**self),
        }
    }
}

impl Default for Value {
    fn default() -> Value {
        Value::EMPTY
    }
}

/// On disk: a little-endian `u32` length, then the bytes. Lengths are checked against the
/// decoder's limit before anything is allocated.
impl Encode for Value {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        let len = u32::try_from(self.len()).map_err(|_| EncodeError::Other("value over 4 GiB"))?;
        len.encode(e)?;
        bincode::enc::write::Writer::write(e.writer(), self)
    }
}

impl<C> Decode<C> for Value {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Value, DecodeError> {
        let len = u32::decode(d)? as usize;
        d.claim_bytes_read(len)?;
        if len <= INLINE_CAP {
            let mut buf = [0; INLINE_CAP];
            bincode::de::read::Reader::read(d.reader(), &mut buf[..len])?;
            return Ok(Value(Repr::Inline {
                len: len as u8,
                buf,
            }));
        }
        let mut v = vec![0; len];
        bincode::de::read::Reader::read(d.reader(), &mut v)?;
        Ok(Value::from(v))
    }
}

impl<'de, C> BorrowDecode<'de, C> for Value {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Value, DecodeError> {
        Value::decode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_shared_compare_by_bytes() {
        let short = Value::from(&b"abc"[..]);
        let long = Value::from(vec![7u8; 100]);
        assert_eq!(short, *b"abc");
        assert_eq!(short.heap_bytes(), 0);
        assert_eq!(long.len(), 100);
        assert!(long.heap_bytes() >= 116);
        let abd = Value::from(&b"abd"[..]);
        assert!(short < abd);
        assert_eq!(Value::from(vec![1u8; 31]), Value::copy_from(&[1u8; 31]));
        assert_eq!(Value::EMPTY.len(), 0);
    }
}
