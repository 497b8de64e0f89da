//! Checkpoints: everything that determines a run's future, in one file.
//!
//! A run is a pure function of its scenario and its state: random numbers
//! come from counter-based streams keyed by (seed, stream, step, entity), so
//! the only "RNG position" is the step counter. A checkpoint therefore holds
//!
//! * a header: format version, microcosm version, the scenario (name, file,
//!   the directory its data paths resolve against, and its text after
//!   `--set`, with a hash of that text), the step, and the byte length of
//!   every output file at that step;
//! * every piece of state a plugin registered, in registration order: whole
//!   component columns ([`crate::Builder::checkpoint_component`], in table
//!   row order) and state resources ([`crate::Builder::checkpoint_resource`],
//!   through the [`State`] trait: the parts that are state, not scratch or
//!   caches that the next step rebuilds);
//! * a trailer: the CRC-32 of everything before it, and an end marker.
//!
//! Files are `checkpoint-STEP.mcp` in the run directory, written as `.part`,
//! synced and renamed; the two newest are kept. Resuming
//! ([`crate::Sim::resume`]) rebuilds the world from the scenario exactly as
//! the first run did, runs the setup pass with outputs muted, overwrites the
//! registered state from the newest checkpoint that reads back intact (an
//! older one if the newest is damaged), truncates each output file to its
//! recorded length and appends from there: no row is lost or written twice.
//!
//! The format is little-endian and positional: integers are u64 unless said
//! otherwise, strings and slices are a u64 length then the bytes, plain-data
//! values (`bytemuck::Pod`) their bytes as laid out in memory.

use std::hash::Hasher;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::component::Mutable;
use bevy_ecs::prelude::*;
use bytemuck::Pod;

/// Bumped whenever the layout of a checkpoint changes.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"MCCKPT\r\n";
const END: &[u8; 8] = b"MCCKEND\n";
/// The microcosm version that writes checkpoints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing failed.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: io::Error,
    },
    /// The file is damaged (truncated, checksum mismatch, impossible values).
    #[error("{path}: damaged checkpoint: {reason}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Written by another format or microcosm version.
    #[error(
        "{path}: written by microcosm {version} (checkpoint format {format}); this is microcosm {VERSION} (format {FORMAT}): it cannot resume it"
    )]
    Version {
        /// The file.
        path: String,
        /// Its microcosm version.
        version: String,
        /// Its format.
        format: u32,
    },
    /// Written by another scenario than the run directory's.
    #[error(
        "{path}: written by another scenario ({theirs}) than this run's scenario.toml ({ours})"
    )]
    Scenario {
        /// The file.
        path: String,
        /// Its scenario.
        theirs: String,
        /// The run's.
        ours: String,
    },
    /// Entities have components that checkpoints would not restore.
    #[error(
        "checkpoints would not restore component(s) {}: the plugin that spawns them must save them (Builder::checkpoint_component) or declare them constant (Builder::checkpoint_constant)",
        components.join(", ")
    )]
    Unsaved {
        /// Their type names.
        components: Vec<String>,
    },
    /// No checkpoint in the directory, or none intact.
    #[error("{dir}: {reason}")]
    NoneUsable {
        /// The run directory.
        dir: String,
        /// Why (each damaged file's error).
        reason: String,
    },
}

/// A checkpoint that does not decode: what was expected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Corrupt(pub String);

/// Writes checkpoint data, keeping its CRC-32 and a 64-bit hash of the state.
pub struct Encoder<'a> {
    w: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    hash: std::collections::hash_map::DefaultHasher,
    bytes: u64,
}

impl<'a> Encoder<'a> {
    /// An encoder writing to `w`.
    pub fn new(w: &'a mut dyn Write) -> Self {
        Encoder {
            w,
            crc: crc32fast::Hasher::new(),
            hash: std::collections::hash_map::DefaultHasher::new(),
            bytes: 0,
        }
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.hash.write(b);
        self.bytes += b.len() as u64;
        self.w.write_all(b)
    }

    /// A plain-data value.
    pub fn pod<T: Pod>(&mut self, x: &T) -> io::Result<()> {
        self.bytes(bytemuck::bytes_of(x))
    }

    /// A u64.
    pub fn u64(&mut self, x: u64) -> io::Result<()> {
        self.pod(&x.to_le())
    }

    /// An f64 (bit pattern).
    pub fn f64(&mut self, x: f64) -> io::Result<()> {
        self.u64(x.to_bits())
    }

    /// A bool (one u64).
    pub fn bool(&mut self, x: bool) -> io::Result<()> {
        self.u64(x as u64)
    }

    /// A slice of plain data: length, then the bytes.
    pub fn slice<T: Pod>(&mut self, xs: &[T]) -> io::Result<()> {
        self.u64(xs.len() as u64)?;
        self.bytes(bytemuck::cast_slice(xs))
    }

    /// A string.
    pub fn str(&mut self, s: &str) -> io::Result<()> {
        self.slice(s.as_bytes())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }
}

/// Reads checkpoint data written by an [`Encoder`].
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// `n` raw bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Corrupt(format!("truncated at byte {}", self.pos)))?;
        let b = &self.buf[self.pos..end];
        self.pos = end;
        Ok(b)
    }

    /// A plain-data value.
    pub fn pod<T: Pod>(&mut self) -> Result<T, Corrupt> {
        Ok(bytemuck::pod_read_unaligned(self.bytes(size_of::<T>())?))
    }

    /// A u64.
    pub fn u64(&mut self) -> Result<u64, Corrupt> {
        Ok(u64::from_le(self.pod()?))
    }

    /// A u64 that must fit a `usize` no larger than `max`.
    pub fn len(&mut self, max: usize) -> Result<usize, Corrupt> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| Corrupt(format!("length {n} is impossible here (at most {max})")))
    }

    /// An f64.
    pub fn f64(&mut self) -> Result<f64, Corrupt> {
        Ok(f64::from_bits(self.u64()?))
    }

    /// A bool.
    pub fn bool(&mut self) -> Result<bool, Corrupt> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(Corrupt(format!("{x} is not a bool"))),
        }
    }

    fn raw_slice<T: Pod>(&mut self) -> Result<&'a [u8], Corrupt> {
        let size = size_of::<T>().max(1);
        let n = self.len((self.buf.len() - self.pos) / size)?;
        self.bytes(n * size_of::<T>())
    }

    /// A slice into a vector, resized to the slice's length.
    pub fn vec_into<T: Pod>(&mut self, v: &mut Vec<T>) -> Result<(), Corrupt> {
        let b = self.raw_slice::<T>()?;
        v.clear();
        v.resize(b.len() / size_of::<T>().max(1), T::zeroed());
        bytemuck::cast_slice_mut::<T, u8>(v).copy_from_slice(b);
        Ok(())
    }

    /// A slice into `out`, which must have the same length.
    pub fn slice_into<T: Pod>(&mut self, out: &mut [T]) -> Result<(), Corrupt> {
        let b = self.raw_slice::<T>()?;
        if b.len() != std::mem::size_of_val(out) {
            return Err(Corrupt(format!(
                "{} values where this run has {}",
                b.len() / size_of::<T>().max(1),
                out.len()
            )));
        }
        bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(b);
        Ok(())
    }

    /// A string.
    pub fn string(&mut self) -> Result<String, Corrupt> {
        let b = self.raw_slice::<u8>()?;
        String::from_utf8(b.to_vec()).map_err(|_| Corrupt("a string is not UTF-8".into()))
    }
}

/// A resource that is (partly) state: what [`State::save`] writes,
/// [`State::load`] must read back into a resource built from the same
/// scenario, so that the next step is bitwise the one the first run took.
/// Leave out scratch and anything the next step recomputes.
pub trait State: Send + Sync + 'static {
    /// Writes the state.
    fn save(&self, e: &mut Encoder) -> io::Result<()>;
    /// Reads it back into `self` (built from the same scenario).
    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt>;
}

type SaveFn = fn(&mut World, &mut Encoder) -> io::Result<()>;
type LoadFn = fn(&mut World, &mut Decoder) -> Result<(), Corrupt>;

/// The state registered for checkpoints, in registration order (a resource).
#[derive(Resource, Default)]
pub struct Registered {
    items: Vec<(String, SaveFn, LoadFn)>,
    /// Components saved, or declared constant (rebuilt from the scenario).
    covered: Vec<bevy_ecs::component::ComponentId>,
}

impl Registered {
    /// Marks a component as covered: saved, or constant.
    pub fn cover(&mut self, id: bevy_ecs::component::ComponentId) {
        if !self.covered.contains(&id) {
            self.covered.push(id);
        }
    }

    /// Registers a whole component column.
    pub fn component<C: Component<Mutability = Mutable> + Pod>(&mut self) {
        let name = format!("component {}", short_name::<C>());
        if !self.items.iter().any(|i| i.0 == name) {
            self.items
                .push((name, save_component::<C>, load_component::<C>));
        }
    }

    /// Registers a state resource.
    pub fn resource<R: Resource<Mutability = Mutable> + State>(&mut self) {
        let name = format!("resource {}", short_name::<R>());
        if !self.items.iter().any(|i| i.0 == name) {
            self.items
                .push((name, save_resource::<R>, load_resource::<R>));
        }
    }

    /// Names of what is registered, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().map(|i| i.0.as_str())
    }
}

fn short_name<T>() -> &'static str {
    std::any::type_name::<T>()
}

fn save_component<C: Component<Mutability = Mutable> + Pod>(
    w: &mut World,
    e: &mut Encoder,
) -> io::Result<()> {
    let mut q = w.query::<&C>();
    e.u64(q.iter(w).len() as u64)?;
    for c in q.iter(w) {
        e.pod(c)?;
    }
    Ok(())
}

fn load_component<C: Component<Mutability = Mutable> + Pod>(
    w: &mut World,
    d: &mut Decoder,
) -> Result<(), Corrupt> {
    let mut q = w.query::<&mut C>();
    let n = d.u64()?;
    let have = q.iter(w).len() as u64;
    if n != have {
        return Err(Corrupt(format!("{n} entities where this run has {have}")));
    }
    for mut c in q.iter_mut(w) {
        *c = d.pod()?;
    }
    Ok(())
}

fn save_resource<R: Resource<Mutability = Mutable> + State>(
    w: &mut World,
    e: &mut Encoder,
) -> io::Result<()> {
    w.resource::<R>().save(e)
}

fn load_resource<R: Resource<Mutability = Mutable> + State>(
    w: &mut World,
    d: &mut Decoder,
) -> Result<(), Corrupt> {
    w.resource_mut::<R>().load(d)
}

/// Components that entities have but that checkpoints would not restore
/// (neither saved nor declared constant): a resumed run would silently
/// continue from their spawned values. Their type names, sorted.
pub fn uncovered(world: &World) -> Vec<String> {
    let Some(reg) = world.get_resource::<Registered>() else {
        return Vec::new();
    };
    let resource = world.component_id::<bevy_ecs::resource::IsResource>();
    let mut out: Vec<String> = world
        .archetypes()
        .iter()
        .filter(|a| !a.is_empty() && !resource.is_some_and(|r| a.contains(r)))
        .flat_map(|a| a.components().iter().copied())
        .filter(|id| !reg.covered.contains(id))
        .filter_map(|id| world.components().get_name(id).map(|n| n.to_string()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The header of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Scenario name.
    pub name: String,
    /// Scenario file.
    pub file: PathBuf,
    /// Directory the scenario's data paths resolve against.
    pub dir: PathBuf,
    /// Scenario text after `--set` overrides.
    pub text: String,
    /// The step the checkpoint follows.
    pub step: u64,
    /// Schedule passes run (the setup pass and every step).
    pub passes: u64,
    /// Metrics rows written.
    pub metrics_rows: u64,
    /// `--checkpoint-every` of the run (0: none).
    pub every: u64,
    /// Entities.
    pub entities: u64,
    /// Output files and their lengths in bytes at this step.
    pub outputs: Vec<(String, u64)>,
}

/// A 64-bit FNV-1a hash of scenario text (its identity in checkpoints).
pub fn scenario_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// What writing a checkpoint reports.
#[derive(Debug, Clone)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Hash of the state part (equal states, equal hashes).
    pub state_hash: u64,
}

/// Writes the state of `world` (and `header`) to `w`; returns bytes and state hash.
pub fn encode(w: &mut dyn Write, header: &Header, world: &mut World) -> io::Result<(u64, u64)> {
    let mut e = Encoder::new(w);
    e.bytes(MAGIC)?;
    e.pod(&FORMAT.to_le())?;
    e.str(VERSION)?;
    e.str(&header.name)?;
    e.str(&header.file.to_string_lossy())?;
    e.str(&header.dir.to_string_lossy())?;
    e.str(&header.text)?;
    e.u64(scenario_hash(&header.text))?;
    for x in [
        header.step,
        header.passes,
        header.metrics_rows,
        header.every,
        header.entities,
    ] {
        e.u64(x)?;
    }
    e.u64(header.outputs.len() as u64)?;
    for (name, len) in &header.outputs {
        e.str(name)?;
        e.u64(*len)?;
    }
    // The state hash covers the state only, not where it came from.
    e.hash = std::collections::hash_map::DefaultHasher::new();
    state(&mut e, world)?;
    let state_hash = e.hash.finish();
    let crc = e.crc();
    e.w.write_all(&crc.to_le_bytes())?;
    e.w.write_all(END)?;
    Ok((e.bytes + 12, state_hash))
}

/// Writes the registered state only (for [`state_hash`]).
fn state(e: &mut Encoder, world: &mut World) -> io::Result<()> {
    world.resource_scope(|world, reg: Mut<Registered>| {
        e.u64(reg.items.len() as u64)?;
        for (name, save, _) in &reg.items {
            e.str(name)?;
            save(world, e)?;
        }
        Ok(())
    })
}

/// A 64-bit hash of the registered state of `world`: equal for equal states.
pub fn state_hash(world: &mut World) -> u64 {
    let mut sink = io::sink();
    let mut e = Encoder::new(&mut sink);
    match state(&mut e, world) {
        Ok(()) => e.hash.finish(),
        Err(_) => 0,
    }
}

/// Writes `DIR/checkpoint-STEP.mcp` through a synced `.part` file and a
/// rename, then deletes all but the two newest checkpoints.
pub fn write(dir: &Path, header: &Header, world: &mut World) -> Result<Written, CheckpointError> {
    let name = file_name(header.step);
    let path = dir.join(&name);
    let part = dir.join(format!("{name}.part"));
    let io = |err: io::Error, p: &Path| CheckpointError::Io {
        path: p.display().to_string(),
        err,
    };
    let file = std::fs::File::create(&part).map_err(|e| io(e, &part))?;
    let mut w = io::BufWriter::with_capacity(1 << 20, file);
    let (bytes, state_hash) = encode(&mut w, header, world).map_err(|e| io(e, &part))?;
    let file = w.into_inner().map_err(|e| io(e.into_error(), &part))?;
    file.sync_all().map_err(|e| io(e, &part))?;
    drop(file);
    std::fs::rename(&part, &path).map_err(|e| io(e, &path))?;
    sync_dir(dir);
    for (_, old) in list(dir).into_iter().skip(2) {
        let _ = std::fs::remove_file(old);
    }
    Ok(Written {
        path,
        bytes,
        state_hash,
    })
}

/// Makes a rename durable (best effort: not every platform can sync a directory).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

fn file_name(step: u64) -> String {
    format!("checkpoint-{step:012}.mcp")
}

/// Checkpoints in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name
                .strip_prefix("checkpoint-")?
                .strip_suffix(".mcp")?
                .parse()
                .ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort_by_key(|c| std::cmp::Reverse(c.0));
    out
}

/// A checkpoint read back and checked: header parsed, state not yet applied.
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: Header,
    bytes: Vec<u8>,
    state_at: usize,
}

impl Loaded {
    /// Reads and checks a checkpoint file (magic, version, checksum, header).
    pub fn read(path: &Path) -> Result<Loaded, CheckpointError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|err| CheckpointError::Io {
            path: p.clone(),
            err,
        })?;
        let damaged = |reason: String| CheckpointError::Damaged {
            path: p.clone(),
            reason,
        };
        if bytes.len() < MAGIC.len() + 4 + 12 || &bytes[..8] != MAGIC {
            return Err(damaged("not a microcosm checkpoint".into()));
        }
        let body = bytes.len() - 12;
        let crc = u32::from_le_bytes(bytes[body..body + 4].try_into().unwrap_or_default());
        if &bytes[body + 4..] != END || crc != crc32fast::hash(&bytes[..body]) {
            return Err(damaged(if &bytes[body + 4..] != END {
                "truncated (no end marker)".into()
            } else {
                format!("checksum mismatch (stored {crc:08x})")
            }));
        }
        let mut d = Decoder::new(&bytes[8..body]);
        let format = u32::from_le(d.pod().map_err(|c| damaged(c.0))?);
        let version = d.string().map_err(|c| damaged(c.0))?;
        if format != FORMAT || version != VERSION {
            return Err(CheckpointError::Version {
                path: p,
                version,
                format,
            });
        }
        let mut d = Decoder::new(&bytes[..body]);
        let header = (|| -> Result<Header, Corrupt> {
            d.bytes(8 + 4)?;
            d.string()?;
            let name = d.string()?;
            let file = PathBuf::from(d.string()?);
            let dir = PathBuf::from(d.string()?);
            let text = d.string()?;
            let hash = d.u64()?;
            if hash != scenario_hash(&text) {
                return Err(Corrupt("scenario hash mismatch".into()));
            }
            let mut h = Header {
                name,
                file,
                dir,
                text,
                step: d.u64()?,
                passes: d.u64()?,
                metrics_rows: d.u64()?,
                every: d.u64()?,
                entities: d.u64()?,
                outputs: Vec::new(),
            };
            let n = d.len(1 << 16)?;
            for _ in 0..n {
                let name = d.string()?;
                h.outputs.push((name, d.u64()?));
            }
            Ok(h)
        })()
        .map_err(|c| damaged(c.0))?;
        let state_at = d.pos;
        Ok(Loaded {
            path: path.to_path_buf(),
            header,
            bytes,
            state_at,
        })
    }

    /// The newest checkpoint in `dir` that reads back intact; damaged ones
    /// are reported through `warn` and skipped. A checkpoint of another
    /// version, or of another scenario than `expected_hash`, is refused.
    pub fn newest(
        dir: &Path,
        expected_hash: Option<u64>,
        mut warn: impl FnMut(&CheckpointError),
    ) -> Result<Loaded, CheckpointError> {
        let found = list(dir);
        if found.is_empty() {
            return Err(CheckpointError::NoneUsable {
                dir: dir.display().to_string(),
                reason: "no checkpoint-*.mcp files (run with --checkpoint-every N, or stop a run with Ctrl-C, to write one)".into(),
            });
        }
        let mut why = Vec::new();
        for (_, path) in found {
            match Loaded::read(&path) {
                Ok(l) => {
                    if let Some(h) = expected_hash
                        && h != scenario_hash(&l.header.text)
                    {
                        return Err(CheckpointError::Scenario {
                            path: path.display().to_string(),
                            theirs: format!(
                                "`{}`, hash {:016x}",
                                l.header.name,
                                scenario_hash(&l.header.text)
                            ),
                            ours: format!("hash {h:016x}"),
                        });
                    }
                    return Ok(l);
                }
                Err(e @ (CheckpointError::Damaged { .. } | CheckpointError::Io { .. })) => {
                    warn(&e);
                    why.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Err(CheckpointError::NoneUsable {
            dir: dir.display().to_string(),
            reason: format!("no intact checkpoint: {}", why.join("; ")),
        })
    }

    /// Overwrites the registered state of `world` with the checkpoint's.
    pub fn apply(&self, world: &mut World) -> Result<(), CheckpointError> {
        let mut d = Decoder::new(&self.bytes[self.state_at..self.bytes.len() - 12]);
        let r = world.resource_scope(|world, reg: Mut<Registered>| -> Result<(), Corrupt> {
            let n = d.u64()?;
            if n != reg.items.len() as u64 {
                return Err(Corrupt(format!(
                    "{n} pieces of state where this run registers {}",
                    reg.items.len()
                )));
            }
            for (name, _, load) in &reg.items {
                let theirs = d.string()?;
                if theirs != *name {
                    return Err(Corrupt(format!(
                        "found `{theirs}` where `{name}` was expected"
                    )));
                }
                load(world, &mut d).map_err(|c| Corrupt(format!("{name}: {}", c.0)))?;
            }
            if d.pos != d.buf.len() {
                return Err(Corrupt(format!(
                    "{} bytes left over after the state",
                    d.buf.len() - d.pos
                )));
            }
            Ok(())
        });
        r.map_err(|c| CheckpointError::Damaged {
            path: self.path.display().to_string(),
            reason: c.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoder_and_decoder_round_trip() {
        let mut buf = Vec::new();
        let mut e = Encoder::new(&mut buf);
        e.u64(7).unwrap();
        e.f64(-0.0).unwrap();
        e.bool(true).unwrap();
        e.slice(&[[1u16, 2, 3], [4, 5, 6]]).unwrap();
        e.str("héllo").unwrap();
        let n = e.len();
        assert_eq!(n as usize, buf.len());
        let mut d = Decoder::new(&buf);
        assert_eq!(d.u64().unwrap(), 7);
        assert_eq!(d.f64().unwrap().to_bits(), (-0.0f64).to_bits());
        assert!(d.bool().unwrap());
        let mut v = Vec::new();
        d.vec_into::<[u16; 3]>(&mut v).unwrap();
        assert_eq!(v, vec![[1, 2, 3], [4, 5, 6]]);
        assert_eq!(d.string().unwrap(), "héllo");
        assert!(d.u64().is_err(), "reading past the end is an error");
    }

    #[test]
    fn lengths_beyond_the_buffer_are_errors_not_allocations() {
        let mut buf = Vec::new();
        Encoder::new(&mut buf).u64(u64::MAX / 2).unwrap();
        let mut v: Vec<f64> = Vec::new();
        assert!(Decoder::new(&buf).vec_into(&mut v).is_err());
        let mut out = [0u32; 2];
        let mut buf = Vec::new();
        Encoder::new(&mut buf).slice(&[1u32, 2, 3]).unwrap();
        assert!(Decoder::new(&buf).slice_into(&mut out).is_err());
    }
}
