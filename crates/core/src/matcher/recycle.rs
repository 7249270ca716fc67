//! Working memory a round hands on to the next round on the same thread.
//!
//! A round at 100k tickets works in about 40 MB of vectors (the entries, their orders, the chain,
//! the decided matches), all dropped when it ends. Freed, that memory went back to the system
//! whenever the allocator trimmed its heap, and the next round took it back a page at a time: each
//! page a fault and a page of zeros, up to a fifth of a round's time, and in some rounds but not
//! others. A [`Buf`] returns its vector to a shelf of spares for its element type instead, and a
//! round asking for a vector takes the best fitting spare, so a thread that runs rounds keeps its
//! working memory from one to the next, as a long-running matcher should.
//!
//! Each thread keeps at most [`SPARES`] vectors of each element type, the largest: a thread that
//! ran a round over a large pool holds that round's working memory until it ends.

use std::ops::{Deref, DerefMut};

/// Spare vectors kept per element type and thread: as many as a round has alive at once.
const SPARES: usize = 6;

/// An element type whose vectors are recycled, each type with its own shelf (see [`recyclable!`]).
pub(crate) trait Recycle: Sized + 'static {
    /// Runs `f` on this thread's shelf of spare vectors of this type.
    fn with_shelf<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

/// Gives each listed type its shelf: a thread-local list per type, since a generic `thread_local!`
/// is not possible.
macro_rules! recyclable {
    ($($t:ty),* $(,)?) => {
        $(
            impl $crate::matcher::recycle::Recycle for $t {
                fn with_shelf<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
                    thread_local! {
                        static SHELF: std::cell::RefCell<Vec<Vec<$t>>> =
                            const { std::cell::RefCell::new(Vec::new()) };
                    }
                    SHELF.with_borrow_mut(f)
                }
            }
        )*
    };
}
pub(crate) use recyclable;

recyclable!(u32, u64, f64, usize, u128, [u32; 2], (u32, u32), (u64, u32), (f64, f64));

/// A vector whose memory goes back to its type's shelf when it is dropped, for the next round.
#[derive(Debug)]
pub(crate) struct Buf<T: Recycle>(Vec<T>);

impl<T: Recycle> Buf<T> {
    /// An empty vector with room for `capacity`: the smallest spare that has it, else the largest
    /// spare grown to it, else a new one.
    pub fn with_capacity(capacity: usize) -> Self {
        let spare = T::with_shelf(|shelf| {
            let fits = shelf
                .iter()
                .enumerate()
                .filter(|(_, v)| v.capacity() >= capacity)
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i);
            let largest = || {
                shelf
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, v)| v.capacity())
                    .map(|(i, _)| i)
            };
            fits.or_else(largest).map(|i| shelf.swap_remove(i))
        });
        let mut vec = spare.unwrap_or_default();
        vec.reserve(capacity);
        Buf(vec)
    }

    /// `len` copies of `value`.
    pub fn filled(value: T, len: usize) -> Self
    where
        T: Clone,
    {
        let mut buf = Self::with_capacity(len);
        buf.0.resize(len, value);
        buf
    }

    /// At most `most` items, in a vector sized once: a filtered iterator gives no lower bound, and
    /// collected as it is, a vector of 100k would grow by doubling, copying itself each time.
    pub fn collect_at_most(most: usize, items: impl IntoIterator<Item = T>) -> Self {
        let mut buf = Self::with_capacity(most);
        buf.0.extend(items);
        buf
    }
}

impl<T: Recycle> Default for Buf<T> {
    fn default() -> Self {
        Buf(Vec::new())
    }
}

impl<T: Recycle> FromIterator<T> for Buf<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let items = items.into_iter();
        Self::collect_at_most(items.size_hint().0, items)
    }
}

impl<T: Recycle> Deref for Buf<T> {
    type Target = Vec<T>;

    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T: Recycle> DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T: Recycle> Drop for Buf<T> {
    fn drop(&mut self) {
        let mut vec = std::mem::take(&mut self.0);
        if vec.capacity() == 0 {
            return;
        }
        // Elements that own memory (ids) are dropped here, not kept alive on the shelf.
        vec.clear();
        T::with_shelf(|shelf| {
            if shelf.len() < SPARES {
                shelf.push(vec);
            } else if let Some(smallest) = shelf.iter_mut().min_by_key(|v| v.capacity()) {
                // Keep the larger: the rounds that need it are the ones that page-fault most.
                if smallest.capacity() < vec.capacity() {
                    *smallest = vec;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    // Each test has an element type of its own, so that tests run one after another on a thread
    // never see each other's spares. Only their size matters.
    #[derive(Debug, PartialEq)]
    struct Reused(u64);
    #[allow(dead_code)]
    struct Fitted(u64);
    #[allow(dead_code)]
    struct Grown(u64);
    #[allow(dead_code)]
    struct Kept(u64);
    #[derive(Debug, PartialEq)]
    struct Collected(u64);
    recyclable!(Reused, Fitted, Grown, Kept, Collected, Option<Rc<()>>);

    #[test]
    fn a_dropped_vector_is_reused_by_the_next_request_it_fits() {
        let first = Buf::<Reused>::with_capacity(1_000);
        let (capacity, address) = (first.capacity(), first.as_ptr());
        drop(first);
        let mut second = Buf::<Reused>::with_capacity(500);
        assert_eq!(second.as_ptr(), address, "the spare was not reused");
        assert_eq!(second.capacity(), capacity);
        assert!(second.is_empty(), "a reused vector starts empty");
        second.push(Reused(1));
        assert_eq!(second[0].0, 1);
    }

    #[test]
    fn the_smallest_spare_that_fits_is_taken() {
        let (small, large) = (Buf::<Fitted>::with_capacity(100), Buf::<Fitted>::with_capacity(10_000));
        let (small_at, large_at) = (small.as_ptr(), large.as_ptr());
        drop((small, large));
        assert_eq!(Buf::<Fitted>::with_capacity(50).as_ptr(), small_at);
        // The small one is back on the shelf, too small: the large one is taken.
        assert_eq!(Buf::<Fitted>::with_capacity(5_000).as_ptr(), large_at);
    }

    #[test]
    fn a_spare_too_small_is_grown() {
        drop(Buf::<Grown>::with_capacity(10));
        assert!(Buf::<Grown>::with_capacity(1_000).capacity() >= 1_000);
    }

    #[test]
    fn the_shelf_keeps_the_largest_spares_only() {
        let bufs: Vec<Buf<Kept>> = (1..=SPARES + 2).map(|i| Buf::with_capacity(i * 100)).collect();
        drop(bufs);
        let mut kept: Vec<usize> = Kept::with_shelf(|shelf| shelf.iter().map(Vec::capacity).collect());
        kept.sort_unstable();
        assert_eq!(kept.len(), SPARES);
        assert!(kept[0] >= 300, "a small spare was kept over a larger one: {kept:?}");
    }

    #[test]
    fn elements_are_dropped_when_their_vector_is_shelved() {
        let shared = Rc::new(());
        let mut buf = Buf::<Option<Rc<()>>>::with_capacity(4);
        buf.push(Some(Rc::clone(&shared)));
        drop(buf);
        assert_eq!(Rc::strong_count(&shared), 1);
    }

    #[test]
    fn collected_items_fill_a_recycled_vector() {
        drop(Buf::<Collected>::with_capacity(64));
        let odd: Buf<Collected> = Buf::collect_at_most(10, (0..10).filter(|n| n % 2 == 1).map(Collected));
        assert_eq!(
            *odd,
            vec![Collected(1), Collected(3), Collected(5), Collected(7), Collected(9)]
        );
        assert_eq!(odd.capacity(), 64, "the spare was not used");
        assert_eq!(*Buf::filled(7u32, 3), vec![7, 7, 7]);
    }
}
