//! Where every byte goes: component tables, entity bookkeeping, resources,
//! scratch, the heap as the counting allocator sees it, and process RSS.
//!
//! Component bytes are read from bevy's tables: one row of a table column is
//! the component's size plus 8 bytes of change ticks (added + changed, 4 each;
//! bevy_ecs 0.20 without `track_location`). `bytes` counts rows in use,
//! `capacity_bytes` the rows allocated. Entity bookkeeping is bevy's per-entity
//! metadata (generation, location, spawn tick: 24 B, grown by doubling), the
//! table's entity column (8 B/row) and the archetype's entity list (12 B/row).
//! A test checks this model against the counting allocator.

use bevy_ecs::archetype::ArchetypeEntity;
use bevy_ecs::change_detection::Tick;
use bevy_ecs::component::StorageType;
use bevy_ecs::entity::{Entity, EntityGeneration, EntityLocation};
use bevy_ecs::prelude::*;
use bevy_ecs::resource::IsResource;
use serde::Serialize;

use crate::footprint::Footprints;

/// Change-tick bytes bevy keeps per table row and component (added + changed).
pub const TICK_BYTES_PER_ROW: usize = 2 * size_of::<Tick>();

/// Bytes of bevy's per-entity metadata (generation + location + spawn tick).
pub const ENTITY_META_BYTES: usize =
    size_of::<EntityGeneration>() + size_of::<Option<EntityLocation>>() + size_of::<Tick>();

/// Entities the engine and a few plugins' resources occupy (bevy stores each
/// resource on an entity), assumed by [`Estimate`] when sizing entity metadata.
const ENGINE_RESOURCE_ENTITIES: u64 = 16;

/// One component type's storage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ComponentBytes {
    /// Component type name (short).
    pub name: String,
    /// Entities that have it.
    pub entities: u64,
    /// Bytes in use: entities × (size + change ticks).
    pub bytes: u64,
    /// Bytes allocated: table capacity × (size + change ticks).
    pub capacity_bytes: u64,
    /// `capacity_bytes / entities`.
    pub bytes_per_entity: f64,
    /// Size of one component value.
    pub size: u64,
}

/// One resource's heap bytes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ResourceBytes {
    /// Resource name.
    pub name: String,
    /// Heap bytes it owns.
    pub bytes: u64,
}

/// The world's storage, read from its tables.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct WorldBytes {
    /// Spawned entities.
    pub entities: u64,
    /// Per component type (every registered component that has table rows).
    pub components: Vec<ComponentBytes>,
    /// Entity bookkeeping bytes (meta, table and archetype entity lists).
    pub entity_bookkeeping_bytes: u64,
    /// Resources that report a [`crate::footprint::Footprint`].
    pub resources: Vec<ResourceBytes>,
}

impl WorldBytes {
    /// Sum of component capacity bytes.
    pub fn component_bytes(&self) -> u64 {
        self.components.iter().map(|c| c.capacity_bytes).sum()
    }

    /// Sum of resource bytes.
    pub fn resource_bytes(&self) -> u64 {
        self.resources.iter().map(|r| r.bytes).sum()
    }
}

/// Capacity of a vector that grew by doubling (std's growth from 4) to hold `n`.
fn doubled_capacity(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        n.next_power_of_two().max(4)
    }
}

/// Reads the world's storage.
pub fn world_bytes(world: &World) -> WorldBytes {
    let tables = &world.storages().tables;
    // bevy_ecs 0.20 stores each resource on an entity of its own, marked
    // `IsResource`: those tables are resources, reported through `Footprint`.
    let is_resource = world.components().component_id::<IsResource>();
    let user_table = |t: &&bevy_ecs::storage::Table| is_resource.is_none_or(|id| !t.has_column(id));
    let mut components = Vec::new();
    let resource_ids: Vec<_> = world.resource_entities().iter().map(|(id, _)| id).collect();
    for (id, info) in world.components().iter_registered() {
        if Some(id) == is_resource || resource_ids.contains(&id) {
            continue;
        }
        let row = (info.layout().size() + TICK_BYTES_PER_ROW) as u64;
        let (mut n, mut cap) = (0u64, 0u64);
        match info.storage_type() {
            StorageType::Table => {
                for t in tables
                    .iter()
                    .filter(user_table)
                    .filter(|t| t.has_column(id))
                {
                    n += t.entity_count() as u64;
                    cap += t.capacity() as u64;
                }
            }
            StorageType::SparseSet => {
                if let Some(s) = world.storages().sparse_sets.get(id) {
                    n += s.len() as u64;
                    cap += s.len() as u64;
                }
            }
        }
        if n == 0 && cap == 0 {
            continue;
        }
        let name = info.name().to_string();
        let short = name
            .split('<')
            .next()
            .and_then(|h| h.rsplit("::").next())
            .unwrap_or(&name)
            .to_string();
        components.push(ComponentBytes {
            name: short,
            entities: n,
            bytes: n * row,
            capacity_bytes: cap * row,
            bytes_per_entity: if n > 0 {
                (cap * row) as f64 / n as f64
            } else {
                0.0
            },
            size: info.layout().size() as u64,
        });
    }
    let all_entities: u64 = world.archetypes().iter().map(|a| a.len() as u64).sum();
    let entities: u64 = world
        .archetypes()
        .iter()
        .filter(|a| is_resource.is_none_or(|id| !a.contains(id)))
        .map(|a| a.len() as u64)
        .sum();
    let table_entities: u64 = tables
        .iter()
        .filter(user_table)
        .map(|t| t.capacity() as u64)
        .sum::<u64>()
        * size_of::<Entity>() as u64;
    let archetype_entities = entities * size_of::<ArchetypeEntity>() as u64;
    let meta = doubled_capacity(all_entities) * ENTITY_META_BYTES as u64;
    let resources = world
        .get_resource::<Footprints>()
        .map(|f| {
            f.0.iter()
                .map(|e| ResourceBytes {
                    name: e.name.to_string(),
                    bytes: (e.read)(world) as u64,
                })
                .collect()
        })
        .unwrap_or_default();
    WorldBytes {
        entities,
        components,
        entity_bookkeeping_bytes: table_entities + archetype_entities + meta,
        resources,
    }
}

/// Least-squares slope of `y` over `x`, accumulated online (no allocation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Slope {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl Slope {
    /// Adds a point.
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.n as usize
    }

    /// Whether no point was added.
    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// The slope (0 with fewer than two distinct x).
    pub fn slope(&self) -> f64 {
        let d = self.n * self.sxx - self.sx * self.sx;
        if self.n < 2.0 || d == 0.0 {
            0.0
        } else {
            (self.n * self.sxy - self.sx * self.sy) / d
        }
    }
}

/// Process resident set size. On Linux it is read from `/proc/self/statm`
/// (kept open, read in place into a stack buffer: a few µs and no heap
/// allocation); elsewhere with sysinfo (own PID only), which on Linux opens
/// and formats `/proc/self/stat` and `/proc/self/status` each time (~40 µs:
/// a run samples ~100 times, which at 100 steps of a small world was a
/// third of each step).
pub struct Rss {
    /// `/proc/self/statm` and the page size.
    #[cfg(target_os = "linux")]
    statm: Option<(std::fs::File, u64)>,
    sys: Option<sysinfo::System>,
    pid: Option<sysinfo::Pid>,
}

impl Default for Rss {
    fn default() -> Self {
        #[cfg(target_os = "linux")]
        if let Ok(f) = std::fs::File::open("/proc/self/statm") {
            return Rss {
                statm: Some((f, page_size::get() as u64)),
                sys: None,
                pid: None,
            };
        }
        Rss {
            #[cfg(target_os = "linux")]
            statm: None,
            sys: sysinfo::System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }
}

impl Rss {
    /// Current RSS in bytes (0 where the platform does not tell).
    pub fn sample(&mut self) -> u64 {
        #[cfg(target_os = "linux")]
        if let Some((f, page)) = &self.statm {
            return statm_resident_pages(f).map_or(0, |n| n * page);
        }
        let (Some(pid), Some(sys)) = (self.pid, self.sys.as_mut()) else {
            return 0;
        };
        sys.refresh_processes_specifics(
            sysinfo::ProcessesToUpdate::Some(&[pid]),
            false,
            sysinfo::ProcessRefreshKind::nothing().with_memory(),
        );
        sys.process(pid).map_or(0, |p| p.memory())
    }
}

/// Resident pages from `/proc/self/statm` ("size resident shared …").
#[cfg(target_os = "linux")]
fn statm_resident_pages(f: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    let n = f.read_at(&mut buf, 0).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// memory.json: the field names are a contract (DESIGN.md); fields may be added.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Spawned entities.
    pub entities: u64,
    /// Attributable heap bytes / entities (components + bookkeeping + resources + scratch).
    pub bytes_per_entity: f64,
    /// Attributable heap bytes.
    pub attributable_bytes: u64,
    /// Per component.
    pub components: Vec<ComponentBytes>,
    /// Entity bookkeeping (bevy's entity meta and entity lists).
    pub entity_bookkeeping: EntityBookkeeping,
    /// Per resource.
    pub resources: Vec<ResourceBytes>,
    /// Scratch arenas.
    pub scratch: ScratchReport,
    /// Heap as the counting allocator sees it.
    pub heap: HeapReport,
    /// Heap traffic in steady-state steps.
    pub steady_state: SteadyState,
    /// Process RSS.
    pub rss: RssReport,
    /// Per phase, summed over all steps (allocations and bytes over steady-state steps).
    pub phases: Vec<PhaseReport>,
    /// Leak check.
    pub leak: LeakReport,
    /// The estimate made from the scenario before spawning.
    pub estimate: EstimateReport,
    /// Live heap and RSS through the run, for plots.
    pub samples: Vec<MemorySample>,
    /// Attributable bytes per sim-declared unit, as `bytes_per_<unit>`
    /// (e.g. `bytes_per_gene`); see [`crate::plugin::Builder::memory_unit`].
    #[serde(flatten)]
    pub per_unit: std::collections::BTreeMap<String, f64>,
}

/// Units besides entities that a sim counts its memory in (a resource).
#[derive(Resource, Debug, Clone, Default)]
pub struct MemoryUnits(pub Vec<(&'static str, u64)>);

/// Entity bookkeeping bytes.
#[derive(Debug, Clone, Serialize)]
pub struct EntityBookkeeping {
    /// Bytes.
    pub bytes: u64,
    /// Bytes per entity.
    pub bytes_per_entity: f64,
}

/// Scratch arena figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScratchReport {
    /// Highest heap held by all arenas at a step boundary.
    pub high_water_bytes: u64,
    /// Arenas in use (one per worker thread that used scratch).
    pub arenas: u64,
}

/// Counting-allocator figures.
#[derive(Debug, Clone, Serialize)]
pub struct HeapReport {
    /// Live heap bytes at the end of the run.
    pub live_bytes: u64,
    /// Peak live heap bytes during the run.
    pub peak_bytes: u64,
    /// Allocations during the whole run (setup included).
    pub allocations: u64,
    /// Live heap bytes added by setup (world, plugins, spawning): measured.
    pub setup_bytes: u64,
    /// Whether the counting allocator was installed (if not, heap figures are 0).
    pub counting: bool,
}

/// Heap traffic of the steady-state steps.
#[derive(Debug, Clone, Serialize)]
pub struct SteadyState {
    /// Steps counted as steady state (all but the first warm-up steps).
    pub steps: u64,
    /// Heap allocations made by the pipeline in those steps.
    pub heap_allocations: u64,
    /// Heap bytes allocated by the pipeline in those steps.
    pub heap_bytes: u64,
}

/// RSS figures.
#[derive(Debug, Clone, Serialize)]
pub struct RssReport {
    /// At start of the process's run.
    pub start_bytes: u64,
    /// Highest sampled.
    pub peak_bytes: u64,
    /// At the end.
    pub end_bytes: u64,
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Phase name.
    pub phase: String,
    /// Wall seconds over all steps.
    pub seconds: f64,
    /// Heap allocations in steady-state steps.
    pub allocations: u64,
    /// Heap bytes allocated in steady-state steps.
    pub bytes: u64,
}

/// Leak check.
#[derive(Debug, Clone, Serialize)]
pub struct LeakReport {
    /// Least-squares slope of live heap bytes over steady-state steps.
    pub slope_bytes_per_step: f64,
    /// Points the slope was fitted to.
    pub points: u64,
}

/// The pre-spawn estimate.
#[derive(Debug, Clone, Serialize)]
pub struct EstimateReport {
    /// Predicted attributable bytes.
    pub bytes: u64,
    /// Predicted bytes per entity.
    pub bytes_per_entity: f64,
    /// Predicted entities.
    pub entities: u64,
}

/// One memory sample.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct MemorySample {
    /// Step.
    pub step: u64,
    /// Live heap bytes.
    pub live_bytes: u64,
    /// RSS bytes.
    pub rss_bytes: u64,
}

/// A memory estimate built by plugins from the scenario alone, before spawning.
#[derive(Debug, Clone, Default)]
pub struct Estimate {
    /// Entities to be spawned.
    pub entities: u64,
    /// Component bytes (with change ticks).
    pub component_bytes: u64,
    /// Resource and other heap bytes.
    pub other_bytes: u64,
    /// Named contributions, for the `estimate` command's table.
    pub lines: Vec<(String, u64)>,
}

impl Estimate {
    /// `n` more entities carrying components whose value sizes are `sizes`
    /// (use [`size_of`]); adds their table rows and entity bookkeeping.
    pub fn entities(&mut self, what: &str, n: u64, sizes: &[usize]) {
        let row: u64 = sizes
            .iter()
            .map(|s| (s + TICK_BYTES_PER_ROW) as u64)
            .sum::<u64>()
            + (size_of::<Entity>() + size_of::<ArchetypeEntity>()) as u64;
        self.entities += n;
        self.component_bytes += n * row;
        self.lines
            .push((format!("{what}: {n} entities × {row} B"), n * row));
    }

    /// A resource or buffer of `bytes`.
    pub fn bytes(&mut self, what: &str, bytes: u64) {
        self.other_bytes += bytes;
        self.lines.push((what.to_string(), bytes));
    }

    /// Total predicted bytes (entity metadata included).
    pub fn total(&self) -> u64 {
        self.component_bytes
            + self.other_bytes
            + doubled_capacity(self.entities + ENGINE_RESOURCE_ENTITIES) * ENTITY_META_BYTES as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Component)]
    #[allow(dead_code)]
    struct P([f32; 3]);

    #[test]
    fn component_bytes_include_ticks_and_capacity() {
        let mut w = World::new();
        w.spawn_batch((0..1000).map(|_| P([0.0; 3])));
        let b = world_bytes(&w);
        let p = b.components.iter().find(|c| c.name == "P").unwrap();
        assert_eq!(p.entities, 1000);
        assert_eq!(p.size, 12);
        assert_eq!(p.bytes, 1000 * 20);
        assert!(p.capacity_bytes >= p.bytes);
        assert_eq!(b.entities, 1000);
        assert_eq!(ENTITY_META_BYTES, 24);
        assert_eq!(TICK_BYTES_PER_ROW, 8);
    }

    /// The statm reading agrees with sysinfo's, and sees 64 MiB touched.
    #[cfg(target_os = "linux")]
    #[test]
    fn rss_from_statm_agrees_with_sysinfo_and_sees_touched_pages() {
        let mut fast = Rss::default();
        assert!(fast.statm.is_some());
        let mut slow = Rss {
            statm: None,
            sys: sysinfo::System::new().ok(),
            pid: sysinfo::get_current_pid().ok(),
        };
        let (a, b) = (fast.sample(), slow.sample());
        assert!(a > 0 && b > 0);
        assert!(a.abs_diff(b) < 4 << 20, "statm {a} vs sysinfo {b}");
        let before = fast.sample();
        let v = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = fast.sample();
        assert!(after >= before + (60 << 20), "{before} → {after}");
        drop(v);
    }

    #[test]
    fn slope_of_a_line_is_exact() {
        let mut s = Slope::default();
        for i in 0..10 {
            s.add(i as f64, 3.0 * i as f64 + 7.0);
        }
        assert_eq!(s.slope(), 3.0);
        assert_eq!(s.len(), 10);
    }
}
