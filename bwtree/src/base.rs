//! Page contents with the summary a reader needs on every visit (the payload bytes a split
//! decision counts) computed once, when built or decoded, instead of by a pass over the
//! entries per visit: [`Base`] (a page at the bottom of a chain) and [`BatchOps`] (the writes
//! of a `Batch` delta).
//!
//! Both are immutable: their contents are only reachable by shared reference (or moved out
//! whole), so the summary cannot go stale. On disk each is exactly what it wraps (a [`Page`],
//! a `Vec` of writes): the summary is never encoded, so the format does not change.

use bincode::de::{BorrowDecoder, Decoder};
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};

use crate::node::{Node, Page};
use crate::value::Value;

/// A page plus its precomputed summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Base {
    page: Page,
    /// `Node::payload_bytes` of a node page (0 for the catalog).
    payload_bytes: usize,
}

impl Base {
    pub(crate) fn new(page: Page) -> Base {
        let payload_bytes = match &page {
            Page::Node(n) => n.payload_bytes(),
            Page::Catalog(_) => 0,
        };
        Base {
            page,
            payload_bytes,
        }
    }

    pub(crate) fn page(&self) -> &Page {
        &self.page
    }

    pub(crate) fn into_page(self) -> Page {
        self.page
    }

    /// The node, if this is a tree node.
    pub(crate) fn node(&self) -> Option<&Node> {
        match &self.page {
            Page::Node(n) => Some(n),
            Page::Catalog(_) => None,
        }
    }

    /// `Node::payload_bytes` of the node, without a pass over its entries.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
}

/// One write of a batch: the key and its new value (`None`: removed).
pub(crate) type BatchOp = (Value, Option<Value>);

/// The writes of a `Batch` delta, in key order, with their payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BatchOps {
    ops: Vec<BatchOp>,
    payload_bytes: usize,
}

impl BatchOps {
    pub(crate) fn new(ops: Vec<BatchOp>) -> BatchOps {
        let payload_bytes = ops
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
            .sum();
        BatchOps { ops, payload_bytes }
    }

    /// Heap bytes owned (the vector's capacity plus shared values).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.ops.capacity() * std::mem::size_of::<BatchOp>()
            + self
                .ops
                .iter()
                .map(|(k, v)| k.heap_bytes() + v.as_ref().map_or(0, Value::heap_bytes))
                .sum::<usize>()
    }

    /// Key and value bytes of the writes, without a pass over them.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
}

impl std::ops::Deref for BatchOps {
    type Target = [BatchOp];
    fn deref(&self) -> &[BatchOp] {
        &self.ops
    }
}

impl Encode for BatchOps {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.ops.encode(e)
    }
}

impl<C> Decode<C> for BatchOps {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<BatchOps, DecodeError> {
        Vec::decode(d).map(BatchOps::new)
    }
}

impl<'de, C> BorrowDecode<'de, C> for BatchOps {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(
        d: &mut D,
    ) -> Result<BatchOps, DecodeError> {
        BatchOps::decode(d)
    }
}

impl Encode for Base {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        self.page.encode(e)
    }
}

impl<C> Decode<C> for Base {
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Base, DecodeError> {
        Page::decode(d).map(Base::new)
    }
}

impl<'de, C> BorrowDecode<'de, C> for Base {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Base, DecodeError> {
        Base::decode(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Catalog;

    fn leaf() -> Node {
        Node {
            keys: vec!["a".into(), "bb".into()],
            vals: vec!["1".into(), vec![7u8; 40].into()],
            ..Node::default()
        }
    }

    #[test]
    fn encodes_exactly_as_its_page() {
        let cfg = bincode::config::standard();
        for page in [Page::Node(leaf()), Page::Catalog(Catalog::default())] {
            let plain = bincode::encode_to_vec(&page, cfg).unwrap();
            let wrapped = bincode::encode_to_vec(Base::new(page.clone()), cfg).unwrap();
            assert_eq!(plain, wrapped, "the summary is not on disk");
            let (back, _): (Base, usize) = bincode::decode_from_slice(&wrapped, cfg).unwrap();
            assert_eq!(back, Base::new(page), "decoding recomputes the summary");
        }
    }

    #[test]
    fn batch_ops_encode_exactly_as_their_vec() {
        let cfg = bincode::config::standard();
        let ops: Vec<BatchOp> = vec![("a".into(), Some("xyz".into())), ("bc".into(), None)];
        let plain = bincode::encode_to_vec(&ops, cfg).unwrap();
        let wrapped = bincode::encode_to_vec(BatchOps::new(ops.clone()), cfg).unwrap();
        assert_eq!(plain, wrapped, "the summary is not on disk");
        let (back, _): (BatchOps, usize) = bincode::decode_from_slice(&wrapped, cfg).unwrap();
        assert_eq!(back.payload_bytes(), 1 + 3 + 2);
        assert_eq!(&*back, &ops[..]);
    }

    #[test]
    fn summary_is_the_nodes_payload() {
        let base = Base::new(Page::Node(leaf()));
        assert_eq!(base.payload_bytes(), 1 + 2 + 1 + 40);
        assert_eq!(base.payload_bytes(), leaf().payload_bytes());
    }
}
