//! Output files: metrics.csv, summary.json, memory.json and sim-specific files.
//!
//! Every file is written under a temporary name (`NAME.part`) and renamed to
//! its final name when complete, so a crash never leaves a half-written file
//! under a final name. Writes go through a `BufWriter` created at build time:
//! writing a row formats numbers straight into its buffer, with no heap
//! allocation.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use bevy_ecs::prelude::*;

use crate::phase::Clock;

/// Handle of an output file opened with [`crate::plugin::Builder::output_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId(usize);

struct OutFile {
    name: String,
    part: PathBuf,
    fin: PathBuf,
    w: BufWriter<File>,
}

/// The run's output files (a resource).
#[derive(Resource, Default)]
pub struct OutputFiles {
    dir: Option<PathBuf>,
    files: Vec<OutFile>,
    error: Option<String>,
    /// Resuming: each file's length at the checkpoint.
    resume: Option<Vec<(String, u64)>>,
    /// Writes are dropped (while a resumed run rebuilds its state).
    muted: bool,
}

impl OutputFiles {
    /// Output into `dir` (created by the caller), or nowhere.
    pub fn new(dir: Option<PathBuf>) -> Self {
        OutputFiles {
            dir,
            files: Vec::new(),
            error: None,
            resume: None,
            muted: false,
        }
    }

    /// Output into `dir` of a run resumed from a checkpoint that recorded
    /// these file lengths: [`OutputFiles::open`] reopens each file, cuts it
    /// back to its recorded length and appends. Writes are muted until
    /// [`OutputFiles::unmute`] (the rebuilt run's header rows and setup pass
    /// are already in the files).
    pub fn resuming(dir: PathBuf, lengths: Vec<(String, u64)>) -> Self {
        OutputFiles {
            resume: Some(lengths),
            muted: true,
            ..OutputFiles::new(Some(dir))
        }
    }

    /// Lets writes through again (see [`OutputFiles::resuming`]).
    pub fn unmute(&mut self) {
        self.muted = false;
    }

    /// Flushes every file to the disk and returns its name and length.
    pub fn sync(&mut self) -> io::Result<Vec<(String, u64)>> {
        use std::io::Seek;
        self.files
            .iter_mut()
            .map(|f| {
                f.w.flush()?;
                let file = f.w.get_mut();
                file.sync_data()?;
                Ok((f.name.clone(), file.stream_position()?))
            })
            .collect()
    }

    /// The output directory, if files are written.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Opens `name` for writing (as `name.part` until [`OutputFiles::finish`]).
    pub fn open(&mut self, name: &str) -> io::Result<Option<FileId>> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        let fin = dir.join(name);
        let part = dir.join(format!("{name}.part"));
        let recorded = self
            .resume
            .as_ref()
            .and_then(|r| r.iter().find(|(n, _)| n == name))
            .map(|&(_, len)| len);
        let file = match recorded {
            None => File::create(&part)?,
            Some(len) => reopen(&part, &fin, len)?,
        };
        let w = BufWriter::with_capacity(1 << 14, file);
        self.files.push(OutFile {
            name: name.to_string(),
            part,
            fin,
            w,
        });
        Ok(Some(FileId(self.files.len() - 1)))
    }

    /// Writes with `f`; the first error is kept and stops the run after this step.
    pub fn write(&mut self, id: FileId, f: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>) {
        if self.error.is_some() || self.muted {
            return;
        }
        let file = &mut self.files[id.0];
        if let Err(e) = f(&mut file.w) {
            self.error = Some(format!("{}: {e}", file.fin.display()));
        }
    }

    /// Records a write error.
    pub fn fail(&mut self, what: String) {
        self.error.get_or_insert(what);
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Flushes every file and renames it to its final name. Renames happen
    /// only once every file is flushed and synced: on an error all stay
    /// under their temporary names and an earlier run's files are left as
    /// they were.
    pub fn finish(&mut self) -> io::Result<()> {
        // Every file complete and on disk first; then the renames, so a
        // failure leaves all of an earlier run's files as they were.
        let mut done = Vec::with_capacity(self.files.len());
        for f in self.files.drain(..) {
            let OutFile { part, fin, w, .. } = f;
            let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", fin.display()));
            let file = w.into_inner().map_err(|e| named(e.into_error()))?;
            file.sync_all().map_err(named)?;
            done.push((part, fin));
        }
        for (part, fin) in done {
            std::fs::rename(&part, &fin)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", fin.display())))?;
        }
        Ok(())
    }
}

/// Reopens an output file of a checkpointed run (`NAME.part` if the run
/// was killed, `NAME` if it finished or stopped), cut back to `len` bytes,
/// positioned at its end, under the `.part` name.
fn reopen(part: &Path, fin: &Path, len: u64) -> io::Result<File> {
    use std::io::{Seek, SeekFrom};
    if !part.exists() && fin.exists() {
        std::fs::rename(fin, part)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(part)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{}: output of the checkpointed run: {e}", fin.display()),
            )
        })?;
    let have = f.metadata()?.len();
    if have < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "{}: {have} bytes, shorter than the {len} the checkpoint recorded",
                fin.display()
            ),
        ));
    }
    f.set_len(len)?;
    f.seek(SeekFrom::End(0))?;
    Ok(f)
}

impl crate::Footprint for OutputFiles {
    fn heap_bytes(&self) -> usize {
        self.files.iter().map(|f| f.w.capacity()).sum::<usize>()
            + self.files.capacity() * size_of::<OutFile>()
    }
}

/// The metrics row (a resource): plugins declare columns at build time and set
/// values in `measure`; the engine writes the row in `output` on sampled steps.
#[derive(Resource, Debug, Default)]
pub struct Metrics {
    index: &'static str,
    columns: Vec<&'static str>,
    row: Vec<f64>,
    file: Option<FileId>,
    pub(crate) rows: u64,
}

impl Metrics {
    /// Names the first column (the step number): `step` unless a sim names
    /// it otherwise (e.g. `generation`).
    pub fn set_index_name(&mut self, name: &'static str) {
        self.index = name;
    }

    /// Adds a column (after `step`), returning its index.
    pub fn add_column(&mut self, name: &'static str) -> usize {
        self.columns.push(name);
        self.row.push(f64::NAN);
        self.columns.len() - 1
    }

    /// Sets a value of the current row.
    pub fn set(&mut self, column: usize, value: f64) {
        self.row[column] = value;
    }

    /// The current row's values.
    pub fn row(&self) -> &[f64] {
        &self.row
    }

    /// Column names (without `step`).
    pub fn columns(&self) -> &[&'static str] {
        &self.columns
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A column's value in the current row, by name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.columns
            .iter()
            .position(|c| *c == name)
            .map(|i| self.row[i])
    }
}

impl crate::Footprint for Metrics {
    fn heap_bytes(&self) -> usize {
        self.columns.heap_bytes() + self.row.heap_bytes()
    }
}

/// Opens metrics.csv and writes its header (at the end of build).
pub(crate) fn open_metrics(world: &mut World) -> io::Result<()> {
    let id = world.resource_mut::<OutputFiles>().open("metrics.csv")?;
    world.resource_scope(|world, mut files: Mut<OutputFiles>| {
        let mut m = world.resource_mut::<Metrics>();
        m.file = id;
        if let Some(id) = id {
            files.write(id, |w| {
                write!(w, "{}", if m.index.is_empty() { "step" } else { m.index })?;
                for c in &m.columns {
                    write!(w, ",{c}")?;
                }
                writeln!(w)
            });
        }
        match files.error() {
            Some(e) => Err(io::Error::other(e.to_string())),
            None => Ok(()),
        }
    })
}

/// The engine's output system: writes the metrics row on sampled steps.
pub(crate) fn write_metrics(
    clock: Res<Clock>,
    mut m: ResMut<Metrics>,
    mut files: ResMut<OutputFiles>,
) {
    if !clock.is_sample_step() {
        return;
    }
    m.rows += 1;
    let Some(id) = m.file else { return };
    files.write(id, |w| {
        write!(w, "{}", clock.step)?;
        for v in &m.row {
            write!(w, ",{v}")?;
        }
        writeln!(w)
    });
}

/// Writes `bytes` to `dir/name` through a temporary file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let part = dir.join(format!("{name}.part"));
    {
        let mut f = File::create(&part)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&part, dir.join(name))
}
