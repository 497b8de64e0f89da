//! Fixed-order parallel reductions: the result does not depend on the thread count.
//!
//! The input is cut into chunks of a fixed size (never "one chunk per
//! thread"); each chunk's partial result is computed in parallel into a slot
//! of a buffer taken from the scratch arena, and the partials are then folded
//! in chunk order on one thread. Floating-point sums are therefore the same
//! bits with 1 or N threads.

use rayon::prelude::*;

use crate::scratch::ScratchArenas;

/// Default chunk length for [`map_reduce`].
pub const CHUNK: usize = 4096;

/// Maps each fixed-size chunk of `items` to a partial result in parallel and
/// folds the partials in chunk order. Allocates only from the scratch arena.
pub fn map_reduce<T, A>(
    scratch: &ScratchArenas,
    items: &[T],
    chunk: usize,
    identity: A,
    map: impl Fn(usize, &[T]) -> A + Sync + Send,
    fold: impl Fn(A, A) -> A,
) -> A
where
    T: Sync,
    A: Copy + Send + Sync,
{
    let chunk = chunk.max(1);
    let n = items.len().div_ceil(chunk);
    scratch.with(|bump| {
        let partials = bump.alloc_slice_fill_copy(n, identity);
        partials
            .par_iter_mut()
            .zip(items.par_chunks(chunk))
            .enumerate()
            .for_each(|(i, (p, c))| *p = map(i * chunk, c));
        partials.iter().fold(identity, |acc, &p| fold(acc, p))
    })
}

/// Sum of `f(index, item)` over `items`, in fixed chunk order.
pub fn sum<T: Sync>(
    scratch: &ScratchArenas,
    items: &[T],
    f: impl Fn(usize, &T) -> f64 + Sync + Send,
) -> f64 {
    map_reduce(
        scratch,
        items,
        CHUNK,
        0.0,
        |start, c| c.iter().enumerate().map(|(i, x)| f(start + i, x)).sum(),
        |a, b| a + b,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_bitwise_identical_across_pool_sizes() {
        let xs: Vec<f64> = (0..100_003).map(|i| 1.0 / (1.0 + i as f64)).collect();
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let s = ScratchArenas::new(threads);
            pool.install(|| sum(&s, &xs, |_, x| x * x * 1e3 + x))
        };
        let a = run(1);
        assert_eq!(a.to_bits(), run(2).to_bits());
        assert_eq!(a.to_bits(), run(3).to_bits());
        // Same as a sequential sum of per-chunk sums.
        let seq = xs
            .chunks(CHUNK)
            .map(|c| c.iter().map(|x| x * x * 1e3 + x).sum::<f64>())
            .fold(0.0, |a, b| a + b);
        assert_eq!(a.to_bits(), seq.to_bits());
    }
}
