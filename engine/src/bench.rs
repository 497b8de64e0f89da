//! Criterion [`Measurement`]s of heap bytes, so benches measure memory as
//! well as time (they need [`crate::alloc::CountingAlloc`] installed):
//!
//! * [`AllocatedBytes`] — bytes allocated by the routine (allocation traffic,
//!   freed or not);
//! * [`LiveBytes`] — bytes the routine's outputs still hold when it ends; use
//!   it with `iter_with_large_drop`, which drops the outputs after measuring.
//!
//! ```no_run
//! use criterion::{Criterion, Throughput};
//! use microcosm_engine::bench::LiveBytes;
//!
//! let n = 1000;
//! let mut c = Criterion::default().with_measurement(LiveBytes);
//! let mut g = c.benchmark_group("build");
//! g.throughput(Throughput::Elements(n)); // reported as bytes per element
//! g.bench_function("vec", |b| b.iter_with_large_drop(|| vec![0u64; n as usize]));
//! ```

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

use crate::alloc;

/// Bytes allocated by the measured routine (all threads of the process).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllocatedBytes;

/// The parts of a byte-counting [`Measurement`] that do not depend on what is counted.
macro_rules! bytes_value {
    () => {
        type Value = u64;

        fn add(&self, a: &u64, b: &u64) -> u64 {
            a + b
        }

        fn zero(&self) -> u64 {
            0
        }

        fn to_f64(&self, v: &u64) -> f64 {
            *v as f64
        }

        fn formatter(&self) -> &dyn ValueFormatter {
            &BytesFormatter
        }
    };
}

impl Measurement for AllocatedBytes {
    type Intermediate = u64;
    bytes_value!();

    fn start(&self) -> u64 {
        alloc::stats().allocated_bytes
    }

    fn end(&self, i: u64) -> u64 {
        alloc::stats().allocated_bytes - i
    }
}

/// Live heap bytes added by the routine and still held at its end.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveBytes;

impl Measurement for LiveBytes {
    type Intermediate = usize;
    bytes_value!();

    fn start(&self) -> usize {
        alloc::stats().live_bytes
    }

    fn end(&self, i: usize) -> u64 {
        alloc::stats().live_bytes.saturating_sub(i) as u64
    }
}

/// Formats bytes (and bytes per element under `Throughput::Elements`).
pub struct BytesFormatter;

fn scale(typical: f64, values: &mut [f64]) -> &'static str {
    let (d, unit) = if typical < 1024.0 {
        (1.0, "B")
    } else if typical < 1024.0 * 1024.0 {
        (1024.0, "KiB")
    } else if typical < 1024.0 * 1024.0 * 1024.0 {
        (1024.0 * 1024.0, "MiB")
    } else {
        (1024.0 * 1024.0 * 1024.0, "GiB")
    };
    values.iter_mut().for_each(|v| *v /= d);
    unit
}

impl ValueFormatter for BytesFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        scale(typical, values)
    }

    fn scale_throughputs(&self, _typical: f64, t: &Throughput, values: &mut [f64]) -> &'static str {
        let (n, unit) = match t {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (*n as f64, "B/elem")
            }
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (*n as f64, "B/B"),
            _ => (1.0, "B"),
        };
        values.iter_mut().for_each(|v| *v /= n);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "B"
    }
}

/// Times `iters` steps of `sim` run on one worker of its pool, as
/// `microcosm run` runs them ([`crate::Sim::run`]): stepping from outside
/// the pool would add a thread hand-off to every step, which is most of a
/// step for small worlds. For criterion's `iter_custom`.
pub fn time_steps(sim: &mut crate::Sim, iters: u64) -> std::time::Duration {
    sim.in_pool(|s| {
        let t = std::time::Instant::now();
        for _ in 0..iters {
            std::hint::black_box(s.step());
        }
        t.elapsed()
    })
}
