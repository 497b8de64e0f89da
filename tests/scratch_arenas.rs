//! Scratch arenas are reset every step and their high-water mark is reported.

mod common;

use microcosm::engine::alloc::CountingAlloc;
use microcosm::engine::prelude::*;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Takes `base + step·grow` bytes of scratch each step and records, per step,
/// the address of its first scratch allocation and the arena's bytes in use
/// before it allocated.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scratchy {
    base: usize,
    grow: usize,
}

#[derive(Resource, Default)]
struct Seen {
    first_addr: Vec<usize>,
    held_before: Vec<usize>,
}

impl Plugin for Scratchy {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let (base, grow) = (self.base, self.grow);
        b.insert_resource(Seen {
            first_addr: Vec::with_capacity(64),
            held_before: Vec::with_capacity(64),
        });
        b.add_systems(
            Phase::Interact,
            move |scratch: Res<ScratchArenas>, clock: Res<Clock>, mut seen: ResMut<Seen>| {
                let (addr, used) = scratch.with(|bump| {
                    let used = bump.allocated_bytes() - bump.chunk_capacity();
                    let n = base + clock.step as usize * grow;
                    let buf = bump.alloc_slice_fill_copy(n, clock.step as u8);
                    (buf.as_ptr() as usize, used)
                });
                seen.first_addr.push(addr);
                seen.held_before.push(used);
            },
        );
        Ok(())
    }
}

impl PluginConfig for Scratchy {
    const NAME: &'static str = "scratchy";
    const SUMMARY: &'static str = "uses scratch";
}

#[test]
fn arenas_reset_every_step_and_report_their_high_water_mark() {
    let _g = common::serial();
    let mut r = Registry::default();
    r.register::<Scratchy>();
    let text =
        "[run]\nsteps = 40\nwarmup_steps = 20\n[plugins.scratchy]\nbase = 1000\ngrow = 2000\n";
    let mut sim = common::sim(text, &r, 1, None);
    sim.run(|_, _| {});
    let seen = sim.world().resource::<Seen>();
    assert_eq!(seen.first_addr.len(), 41, "setup pass + 40 steps");
    // Nothing survives from the previous step: the arena is empty when the
    // step first uses it, every step.
    for (step, &used) in seen.held_before.iter().enumerate() {
        assert_eq!(used, 0, "step {step} found {used} bytes still in use");
    }
    // Once the arena's chunk is big enough, each step's first allocation
    // reuses the same memory (bump allocation runs down from the chunk's end,
    // so larger requests start lower: compare equal-sized steps via their end).
    let last = seen.first_addr[40] + 1000 + 40 * 2000;
    let prev = seen.first_addr[39] + 1000 + 39 * 2000;
    assert_eq!(last, prev, "same chunk reused");
    let m = sim.finish().unwrap().memory;
    // The largest request was 81,000 bytes at step 40.
    assert!(
        m.scratch.high_water_bytes >= 81_000,
        "{}",
        m.scratch.high_water_bytes
    );
    assert!(
        m.scratch.high_water_bytes < 4 * 81_000,
        "{}",
        m.scratch.high_water_bytes
    );
    assert_eq!(m.scratch.arenas, 1);
}
