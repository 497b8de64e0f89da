//! The memory model of bevy's storage (components with change ticks, entity
//! bookkeeping) matches what the counting allocator sees.

use microcosm::engine::alloc::{self, CountingAlloc};
use microcosm::engine::bevy_ecs::prelude::*;
use microcosm::engine::memory::world_bytes;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Component, Clone, Copy)]
#[allow(dead_code)]
struct A([f32; 3]);

#[derive(Component, Clone, Copy)]
#[allow(dead_code)]
struct B(u64);

#[test]
fn modelled_world_bytes_match_the_allocator() {
    for n in [(1u32 << 14) - 50, (1 << 16) - 50] {
        let mut w = World::new();
        w.spawn(A([0.0; 3])).despawn(); // register and create the table outside the measurement
        w.spawn((A([0.0; 3]), B(0))).despawn();
        let before = alloc::stats().live_bytes;
        w.spawn_batch((0..n).map(|_| (A([1.0; 3]), B(2))));
        let measured = (alloc::stats().live_bytes - before) as f64;
        let m = world_bytes(&w);
        let modelled = (m.component_bytes() + m.entity_bookkeeping_bytes) as f64;
        eprintln!(
            "n={n}: measured {:.2} B/entity, modelled {:.2} (components {:.2}, bookkeeping {:.2})",
            measured / n as f64,
            modelled / n as f64,
            m.component_bytes() as f64 / n as f64,
            m.entity_bookkeeping_bytes as f64 / n as f64
        );
        assert!((measured - modelled).abs() / measured < 0.02);
    }
}
