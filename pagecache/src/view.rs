//! [`PageView`]: a reader's snapshot of one page, valid while its epoch guard is pinned.

use std::fmt;

use radix::{Pid, SlotWord};

use crate::model::PageModel;
use crate::node::{Body, Node};

/// A page as one reader saw it: the chain from the head it loaded down to the base. Nothing is
/// copied; the guard lifetime `'g` keeps every node alive. Pass it back as the expected state
/// of `prepend`, `replace` or `free`.
///
/// If the head was a delta staged by an uncommitted [`Group`](crate::Group) when the view was
/// taken, the view shows the page without it ([`PageView::head_is_staged`]); that is decided
/// once, when the view is taken, so a view never changes under its reader.
pub struct PageView<'g, M: PageModel> {
    pub(crate) pid: Pid,
    pub(crate) word: SlotWord,
    /// The node the slot held (what a CAS expects and a new delta links to).
    pub(crate) head: &'g Node<M>,
    /// The newest visible node: `head`, or the first node below the uncommitted staged ones.
    pub(crate) top: &'g Node<M>,
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

    /// Number of visible fragments (deltas + 1).
    pub fn len(&self) -> usize {
        self.top.len as usize
    }

    /// Whether the page's head was a delta staged by an uncommitted group when this view was
    /// taken. The view then shows the page without the group's deltas, and `prepend`,
    /// `replace`, `free` and `evict` refuse it as if their CAS had lost: re-read (with
    /// backoff) until the group commits or aborts.
    pub fn head_is_staged(&self) -> bool {
        !std::ptr::eq(self.head, self.top)
    }

    /// Always false: a page has at least its base.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The fragments, newest first, ending with the base.
    pub fn iter(&self) -> impl Iterator<Item = Fragment<'g, M>> + 'g {
        self.top.chain().map(|n| match &n.body {
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
        self.top.base_body()
    }

    /// The base with every delta applied.
    pub fn consolidate(&self) -> M::Base {
        let mut deltas: Vec<&M::Delta> = self.deltas().collect();
        deltas.reverse();
        M::consolidate(self.base(), &deltas)
    }

    /// Heap bytes of the chain (what the cache budget counts for it).
    pub fn heap_bytes(&self) -> usize {
        self.top.chain_bytes
    }

    /// Whether `other` shows this page's visible chain unchanged. Between two views taken under
    /// one pinned guard, true means nothing was prepended, replaced or committed on the page in
    /// between: a chain's nodes are not freed (so their addresses are not reused) while a
    /// guard that saw them is pinned. (An aborted group puts the same chain back: true again.)
    pub fn shows_same_chain(&self, other: &PageView<'_, M>) -> bool {
        self.pid == other.pid && std::ptr::eq(self.top, other.top)
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

    /// The visible chain's nodes, newest first (crate use: fragments' disk pointers). Never
    /// an uncommitted staged node.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &'g Node<M>> + 'g {
        self.top.chain()
    }
}

impl<M: PageModel> fmt::Debug for PageView<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageView")
            .field("pid", &self.pid)
            .field("len", &self.top.len)
            .field("head_is_staged", &self.head_is_staged())
            .finish_non_exhaustive()
    }
}
