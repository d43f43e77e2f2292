//! [`PageView`]: a reader's snapshot of one page, valid while its epoch guard is pinned.

use std::fmt;

use radix::{Pid, SlotWord};

use crate::model::PageModel;
use crate::node::{Body, Node};

/// A page as one reader saw it: the chain from the head it loaded down to the base. Nothing is
/// copied; the guard lifetime `'g` keeps every node alive. Pass it back as the expected state
/// of `prepend`, `replace` or `free`.
pub struct PageView<'g, M: PageModel> {
    pub(crate) pid: Pid,
    pub(crate) word: SlotWord,
    pub(crate) head: &'g Node<M>,
}

impl<M: PageModel> Clone for PageView<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M: PageModel> Copy for PageView<'_, M> {}

/// One element of a page, newest first.
#[derive(Debug)]
pub enum Fragment<'g, M: PageModel> {
    /// An update.
    Delta(&'g M::Delta),
    /// The consolidated state at the bottom.
    Base(&'g M::Base),
}

impl<'g, M: PageModel> PageView<'g, M> {
    /// The page.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Number of fragments (deltas + 1).
    pub fn len(&self) -> usize {
        self.head.len as usize
    }

    /// Always false: a page has at least its base.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The fragments, newest first, ending with the base.
    pub fn iter(&self) -> impl Iterator<Item = Fragment<'g, M>> + 'g {
        self.head.chain().map(|n| match &n.body {
            Body::Delta(d) => Fragment::Delta(d),
            Body::Base(b) => Fragment::Base(b),
        })
    }

    /// The deltas, newest first.
    pub fn deltas(&self) -> impl Iterator<Item = &'g M::Delta> + 'g {
        self.iter().filter_map(|f| match f {
            Fragment::Delta(d) => Some(d),
            Fragment::Base(_) => None,
        })
    }

    /// The base.
    pub fn base(&self) -> &'g M::Base {
        self.head.base_body()
    }

    /// The base with every delta applied.
    pub fn consolidate(&self) -> M::Base {
        let mut deltas: Vec<&M::Delta> = self.deltas().collect();
        deltas.reverse();
        M::consolidate(self.base(), &deltas)
    }

    /// Heap bytes of the chain (what the cache budget counts for it).
    pub fn heap_bytes(&self) -> usize {
        self.head.chain_bytes
    }

    /// The head as the slot word carries it: with the provenance of the `Box::into_raw` that
    /// published it, so the chain may be freed (and written by its drop) through it. A pointer
    /// made from `&Node` (`self.head`) may not be (Miri reports it under Tree Borrows).
    pub(crate) fn head_raw(&self) -> *mut Node<M> {
        let raw = self
            .word
            .as_ptr::<Node<M>>()
            .expect("a view's word is an in-memory word");
        debug_assert!(std::ptr::eq(raw, self.head), "a view's word names its head");
        raw
    }

    /// The chain's nodes, newest first (crate use: fragments' disk pointers).
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &'g Node<M>> + 'g {
        self.head.chain()
    }
}

impl<M: PageModel> fmt::Debug for PageView<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageView")
            .field("pid", &self.pid)
            .field("len", &self.head.len)
            .finish_non_exhaustive()
    }
}
