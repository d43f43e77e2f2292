//! The tree's page contents: [`Node`] (a consolidated B-link node), [`Delta`] (one update to
//! a node), and [`Page`], the pagecache's base type (a node, or the catalog of named trees).
//!
//! A node covers the keys `[low, high)` (`high = None`: no upper bound) at its `level`
//! (0 = leaf). Its right sibling starts where it ends. A leaf holds sorted keys with their
//! values; an index node holds sorted separators, the first equal to `low`, each with the
//! child covering `[sep_i, sep_{i+1})`.

use bincode::de::{BorrowDecoder, Decoder};
use bincode::error::DecodeError;
use bincode::{BorrowDecode, Decode, Encode};

use crate::base::BatchOps;
use crate::value::Value;

// The page cache's decoder bounds what a payload may claim at 128 in-memory bytes per encoded
// byte (`CLAIM_PER_BYTE` in pagecache's codec), which holds while every container element of
// a page is at most 64 bytes in memory (each encodes to at least one byte).
const _: () = assert!(std::mem::size_of::<(Value, Option<Value>)>() <= 64);
const _: () = assert!(std::mem::size_of::<(Value, RawPid)>() <= 64);
const _: () = assert!(std::mem::size_of::<Value>() <= 64);

/// A raw page id as stored in pages (`radix::Pid::get`).
pub(crate) type RawPid = u64;

/// A consolidated B-link node. Decoding checks the shape that indexing relies on
/// ([`Node::shape_error`]); the encoding is the derived field-by-field one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode)]
pub(crate) struct Node {
    /// 0 for leaves; an index node's children are one level below it.
    pub(crate) level: u8,
    /// The smallest key the node covers (inclusive).
    pub(crate) low: Value,
    /// The first key it no longer covers (`None`: none).
    pub(crate) high: Option<Value>,
    /// The right sibling, whose `low` is this node's `high`.
    pub(crate) right: Option<RawPid>,
    /// Set once the node is being merged into its left sibling: the parent holding the merge
    /// intent (or the root, when the root absorbs its only child). A removed node never
    /// changes again.
    pub(crate) removed: Option<RawPid>,
    /// An index node's merge in progress: its child at `sep` is being merged into the child
    /// on its left. At most one per node; the node neither splits nor merges meanwhile.
    pub(crate) intent: Option<MergeIntent>,
    /// Leaf keys or index separators, strictly increasing.
    pub(crate) keys: Vec<Value>,
    /// A leaf's values, one per key (empty in index nodes).
    pub(crate) vals: Vec<Value>,
    /// An index node's children, one per separator (empty in leaves).
    pub(crate) kids: Vec<RawPid>,
}

/// An index node's pending merge of child `child` (at separator `sep`) into its left neighbour.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(crate) struct MergeIntent {
    pub(crate) sep: Value,
    pub(crate) child: RawPid,
}

/// One update to a node, prepended to its delta chain.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(crate) enum Delta {
    /// Leaf: `key` now maps to `val`. `pos` is where `key` sits or would sit in the base the
    /// delta was written over, so consolidation merges instead of searching.
    Put { key: Value, val: Value, pos: u32 },
    /// Leaf: `key` is absent.
    Del { key: Value, pos: u32 },
    /// Leaf: several keys of one atomic batch (`None`: removed).
    Batch { ops: BatchOps },
    /// The node now ends at `sep`; keys from `sep` on live in `right`.
    Split { sep: Value, right: RawPid },
    /// The node absorbed its right sibling `node` (which started at `sep`).
    Merge { sep: Value, node: Box<Node> },
    /// The node is being merged away (see [`Node::removed`]).
    Remove { parent: RawPid },
    /// Index: keys in `[sep, next)` go to `child` (a new right half from a split).
    IndexEntry {
        sep: Value,
        next: Option<Value>,
        child: RawPid,
    },
    /// Index: see [`MergeIntent`].
    Intent(MergeIntent),
    /// Index: the separator `sep` is gone; keys in `[left_sep, next)` go to `left`.
    TermDelete {
        sep: Value,
        left_sep: Value,
        next: Option<Value>,
        left: RawPid,
    },
    /// Catalog: a named tree rooted at `root`.
    AddTree { name: Value, root: RawPid },
}

/// The catalog of named trees (the page at pid [`CATALOG_PID`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(crate) struct Catalog {
    pub(crate) trees: Vec<(Value, RawPid)>,
}

/// The first page allocated in a new database.
pub(crate) const CATALOG_PID: RawPid = 0;

/// What a page is.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub(crate) enum Page {
    Catalog(Catalog),
    Node(Node),
}

impl<C> Decode<C> for Node {
    /// The fields in declaration order (as the derived encoding writes them), then the shape
    /// check: a node read from disk is validated before anything indexes into it.
    fn decode<D: Decoder<Context = C>>(d: &mut D) -> Result<Node, DecodeError> {
        let node = Node {
            level: Decode::decode(d)?,
            low: Decode::decode(d)?,
            high: Decode::decode(d)?,
            right: Decode::decode(d)?,
            removed: Decode::decode(d)?,
            intent: Decode::decode(d)?,
            keys: Decode::decode(d)?,
            vals: Decode::decode(d)?,
            kids: Decode::decode(d)?,
        };
        match node.shape_error() {
            None => Ok(node),
            Some(broken) => Err(DecodeError::Other(broken)),
        }
    }
}

impl<'de, C> BorrowDecode<'de, C> for Node {
    fn borrow_decode<D: BorrowDecoder<'de, Context = C>>(d: &mut D) -> Result<Node, DecodeError> {
        Node::decode(d)
    }
}

impl Node {
    /// The broken fact, if the node's arrays do not fit together: a leaf has one value per
    /// key and no children; an index node has one child per separator, at least one, and no
    /// values. Every node the tree writes has this shape (`check` asserts it in tests); a
    /// decoded node without it is corruption, which would otherwise surface as an index out of
    /// bounds in routing (found by the `open_dir` fuzz target: an index node with a separator
    /// and no children).
    pub(crate) fn shape_error(&self) -> Option<&'static str> {
        if self.is_leaf() {
            if self.vals.len() != self.keys.len() {
                return Some("a leaf whose value count differs from its key count");
            }
            if !self.kids.is_empty() {
                return Some("a leaf with children");
            }
        } else {
            if self.kids.len() != self.keys.len() {
                return Some("an index node whose child count differs from its separator count");
            }
            if self.kids.is_empty() {
                return Some("an index node without children");
            }
            if !self.vals.is_empty() {
                return Some("an index node with values");
            }
        }
        None
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.level == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Bytes of keys and values (what node size limits count).
    pub(crate) fn payload_bytes(&self) -> usize {
        let k: usize = self.keys.iter().map(|k| k.len()).sum();
        let v: usize = self.vals.iter().map(|v| v.len()).sum();
        k + v + 8 * self.kids.len()
    }

    /// Heap bytes owned (vector capacities plus shared values).
    pub(crate) fn heap_bytes(&self) -> usize {
        let elems = self.keys.capacity() + self.vals.capacity();
        let shared: usize = self
            .keys
            .iter()
            .chain(&self.vals)
            .map(Value::heap_bytes)
            .sum();
        elems * std::mem::size_of::<Value>()
            + self.kids.capacity() * 8
            + shared
            + self.low.heap_bytes()
            + self.high.as_ref().map_or(0, Value::heap_bytes)
    }

    /// The index of the child covering `key` (an index node covering `key`).
    pub(crate) fn child_index(&self, key: &[u8]) -> usize {
        debug_assert!(!self.is_leaf());
        match self.keys.binary_search_by(|s| (**s).cmp(key)) {
            Ok(i) => i,
            Err(0) => 0,
            Err(i) => i - 1,
        }
    }

    /// The node holding this node's entries from `sep` on, covering `[sep, high)` and
    /// pointing at this node's right sibling. `self` is left unchanged: the caller publishes
    /// a `Split` delta (or a new root) instead. `sep` must lie strictly inside the node's
    /// range; an index node must hold a separator equal to it (its first key is its low).
    pub(crate) fn upper_from(&self, sep: &Value) -> Node {
        assert!(
            *sep > self.low,
            "a split separator lies above the low fence"
        );
        assert!(
            self.high.as_ref().is_none_or(|h| sep < h),
            "and below the high fence"
        );
        let at = self.keys.partition_point(|k| k < sep);
        assert!(
            self.is_leaf() || self.keys.get(at) == Some(sep),
            "index splits at a separator"
        );
        Node {
            level: self.level,
            low: sep.clone(),
            high: self.high.clone(),
            right: self.right,
            removed: None,
            intent: None,
            keys: self.keys[at..].to_vec(),
            vals: self.vals.get(at..).map(<[_]>::to_vec).unwrap_or_default(),
            kids: self.kids.get(at..).map(<[_]>::to_vec).unwrap_or_default(),
        }
    }

    /// The lower part left after splitting at `sep`, with its new fence and right sibling.
    pub(crate) fn lower_until(mut self, sep: &Value, right: RawPid) -> Node {
        let at = self.keys.partition_point(|k| k < sep);
        self.keys.truncate(at);
        self.vals.truncate(if self.is_leaf() { at } else { 0 });
        self.kids.truncate(at);
        self.high = Some(sep.clone());
        self.right = Some(right);
        self
    }

    /// Checks the shape invariants (tests and debug builds).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        assert_eq!(self.shape_error(), None);
        assert!(
            self.keys.windows(2).all(|w| w[0] < w[1]),
            "keys strictly increase"
        );
        if self.is_leaf() {
            assert_eq!(self.keys.len(), self.vals.len(), "a value per leaf key");
            assert!(self.kids.is_empty(), "leaves have no children");
        } else {
            assert_eq!(self.keys.len(), self.kids.len(), "a child per separator");
            assert!(self.vals.is_empty(), "index nodes have no values");
            assert!(
                self.keys.first() == Some(&self.low),
                "an index node's first separator is its low fence"
            );
        }
        if let (Some(first), false) = (self.keys.first(), self.is_leaf()) {
            assert!(*first >= self.low);
        }
        if let (Some(last), Some(high)) = (self.keys.last(), &self.high) {
            assert!(last < high, "keys lie below the high fence");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(node: &Node) -> Result<Node, String> {
        // The page cache's codec configuration.
        let config = bincode::config::standard()
            .with_little_endian()
            .with_fixed_int_encoding();
        let bytes = bincode::encode_to_vec(Page::Node(node.clone()), config).unwrap();
        match bincode::decode_from_slice::<Page, _>(&bytes, config) {
            Ok((Page::Node(n), _)) => Ok(n),
            Ok((Page::Catalog(_), _)) => unreachable!("encoded a node"),
            Err(e) => Err(e.to_string()),
        }
    }

    fn index(keys: &[&[u8]], kids: &[RawPid]) -> Node {
        Node {
            level: 1,
            low: Value::from(keys.first().copied().unwrap_or(b"")),
            keys: keys.iter().map(|&k| Value::from(k)).collect(),
            kids: kids.to_vec(),
            ..Node::default()
        }
    }

    #[test]
    fn well_shaped_nodes_decode_as_written() {
        let leaf = Node {
            keys: vec![Value::from(&b"a"[..]), Value::from(&b"b"[..])],
            vals: vec![Value::from(&b"1"[..]), Value::from(&b"2"[..])],
            ..Node::default()
        };
        assert_eq!(roundtrip(&leaf).unwrap(), leaf);
        assert_eq!(roundtrip(&Node::default()).unwrap(), Node::default());
        let node = index(&[b"", b"m"], &[3, 4]);
        assert_eq!(roundtrip(&node).unwrap(), node);
    }

    /// Regression (`fuzz/corpus/open_dir/index-node-without-children`): an index node with a
    /// separator and no child decoded, and routing indexed past its children and panicked.
    #[test]
    fn mis_shaped_nodes_are_refused_at_decode() {
        let cases = [
            (index(&[b""], &[]), "child count differs"),
            (index(&[], &[]), "without children"),
            (index(&[b"", b"m"], &[3]), "child count differs"),
            (
                Node {
                    vals: vec![Value::from(&b"v"[..])],
                    ..index(&[b""], &[3])
                },
                "index node with values",
            ),
            (
                Node {
                    keys: vec![Value::from(&b"a"[..])],
                    ..Node::default()
                },
                "value count differs",
            ),
            (
                Node {
                    kids: vec![3],
                    ..Node::default()
                },
                "leaf with children",
            ),
        ];
        for (node, broken) in cases {
            let err = roundtrip(&node).unwrap_err();
            assert!(err.contains(broken), "{node:?}: {err}");
        }
    }
}
