//! The `replay` plugin: model inversion on recorded behaviour.
//!
//! Given a CSV of `agent,t,obs,action` (what pymdp users fit to behavioural
//! data), it recomputes, for every agent and step, the prior, the posterior
//! after the recorded observation, neg_efe and q_pi of the five one-step
//! policies, with the recorded action driving the next prior — in f64 with
//! [`super::reference`] (pymdp's formulas as written) — and writes them to
//! `beliefs.csv`, one row per agent and step:
//! `agent,t,obs,action,q_pi_0..4,neg_efe_0..4,prior_0..S-1,posterior_0..S-1`.
//!
//! Record `t` is replayed at step `t + 1` (step 0 is the setup pass); steps
//! past the last record do nothing. Each agent's records must have
//! t = 0, 1, 2, … without gaps.

use std::io::Write;

use microcosm_engine::prelude::*;
use serde::Deserialize;

use super::Agent;
use super::reference as rf;
use super::world::{ACTIONS, Model};

/// The `replay` plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The trace: CSV `agent,t,obs,action` (relative to the scenario file).
    pub data: String,
    /// Policy precision γ.
    #[serde(default = "one")]
    pub gamma: f64,
}

fn one() -> f64 {
    1.0
}

/// One record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// Time index within the agent's trace.
    pub t: u32,
    /// Agent ordinal (position of its id among the sorted ids).
    pub agent: u32,
    /// Recorded observation.
    pub obs: u32,
    /// Recorded action.
    pub action: u8,
}

/// A parsed trace: records sorted by (t, agent ordinal), and the agent ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Agent ids, ascending (ordinal = index).
    pub ids: Vec<u64>,
    /// Records by (t, ordinal).
    pub records: Vec<Record>,
}

impl Trace {
    /// Parses `agent,t,obs,action` lines (a header line allowed, `#`
    /// comments and blank lines skipped) for a world of `states` states.
    /// Errors name the line.
    pub fn parse(text: &str, states: usize) -> Result<Trace, String> {
        let mut raw: Vec<(u64, u32, u32, u8, usize)> = Vec::new();
        for r in crate::csv::records(text, &["agent", "t", "obs", "action"], true) {
            let (lineno, f) = r?;
            let num = |k: usize, what: &str| -> Result<u64, String> {
                f[k].parse::<u64>().map_err(|_| {
                    format!(
                        "line {lineno}: {what} `{}` is not a non-negative integer",
                        f[k]
                    )
                })
            };
            let agent = num(0, "agent")?;
            let t = num(1, "t")?;
            let obs = num(2, "obs")?;
            let action = num(3, "action")?;
            if t > u32::MAX as u64 / 2 {
                return Err(format!("line {lineno}: t {t} is too large"));
            }
            if obs >= states as u64 {
                return Err(format!(
                    "line {lineno}: obs {obs} is not a state below {states}"
                ));
            }
            if action >= ACTIONS as u64 {
                return Err(format!(
                    "line {lineno}: action {action} is not in 0..{ACTIONS}"
                ));
            }
            raw.push((agent, t as u32, obs as u32, action as u8, lineno));
        }
        if raw.is_empty() {
            return Err("no records".into());
        }
        raw.sort_unstable_by_key(|r| (r.0, r.1));
        let mut ids = Vec::new();
        let mut records = Vec::with_capacity(raw.len());
        let mut expect = 0u32;
        for (k, r) in raw.iter().enumerate() {
            let new_agent = k == 0 || raw[k - 1].0 != r.0;
            if new_agent {
                ids.push(r.0);
                expect = 0;
            }
            if r.1 != expect {
                return Err(format!(
                    "line {}: agent {} has t = {} where t = {expect} was expected (each agent's t runs 0, 1, 2, … once)",
                    r.4, r.0, r.1
                ));
            }
            expect += 1;
            records.push(Record {
                t: r.1,
                agent: (ids.len() - 1) as u32,
                obs: r.2,
                action: r.3,
            });
        }
        records.sort_unstable();
        Ok(Trace { ids, records })
    }
}

/// Replay state (a resource).
#[derive(Resource, Debug)]
struct ReplayState {
    trace: Trace,
    /// Next record to replay.
    cursor: usize,
    /// Each agent's prior for its next record (agents × S).
    prior: Vec<f64>,
    post: Vec<f64>,
    work: Vec<f64>,
    gamma: f64,
    file: Option<FileId>,
    rows: usize,
}

/// State: the cursor, the priors and the rows written.
impl State for ReplayState {
    fn save(&self, e: &mut Encoder) -> std::io::Result<()> {
        e.u64(self.cursor as u64)?;
        e.u64(self.rows as u64)?;
        e.slice(&self.prior)
    }

    fn load(&mut self, d: &mut Decoder) -> Result<(), Corrupt> {
        self.cursor = d.len(self.trace.records.len())?;
        self.rows = d.len(usize::MAX)?;
        d.slice_into(&mut self.prior)
    }
}

impl Footprint for ReplayState {
    fn heap_bytes(&self) -> usize {
        self.trace.ids.heap_bytes()
            + self.trace.records.heap_bytes()
            + self.prior.heap_bytes()
            + self.post.heap_bytes()
            + self.work.heap_bytes()
    }
}

impl PluginConfig for Replay {
    const NAME: &'static str = "replay";
    const SUMMARY: &'static str = "agents: replay a recorded agent,t,obs,action trace; beliefs.csv";

    fn validate(&self) -> Result<(), Invalid> {
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(Invalid::new("gamma", "must be finite and ≥ 0"));
        }
        Ok(())
    }
}

#[derive(Resource, Debug, Clone, Copy)]
struct RowsColumn(usize);

impl Plugin for Replay {
    fn build(&self, b: &mut Builder) -> Result<(), BuildError> {
        let Some(model) = b.world().get_resource::<Model>() else {
            return Err(b.error("needs the `gridworld` plugin before it"));
        };
        let s_n = model.states;
        let path = b.resolve(&self.data);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| b.key_error("data", format!("{}: {e}", path.display())))?;
        let trace = Trace::parse(&text, s_n)
            .map_err(|e| b.key_error("data", format!("{}: {e}", path.display())))?;
        let agents = trace.ids.len();
        let file = b.output_file("beliefs.csv")?;
        if let Some(id) = file {
            b.world_mut().resource_mut::<OutputFiles>().write(id, |w| {
                write!(w, "agent,t,obs,action")?;
                for u in 0..ACTIONS {
                    write!(w, ",q_pi_{u}")?;
                }
                for u in 0..ACTIONS {
                    write!(w, ",neg_efe_{u}")?;
                }
                for s in 0..s_n {
                    write!(w, ",prior_{s}")?;
                }
                for s in 0..s_n {
                    write!(w, ",posterior_{s}")?;
                }
                writeln!(w)
            });
        }
        let col = b.metric("records");
        b.insert_resource(RowsColumn(col));
        b.insert_resource_with_footprint(ReplayState {
            trace,
            cursor: 0,
            prior: vec![1.0 / s_n as f64; agents * s_n],
            post: vec![0.0; s_n],
            work: vec![0.0; 2 * s_n],
            gamma: self.gamma,
            file,
            rows: 0,
        });
        b.add_systems(Phase::Interact, replay.run_if(stepping));
        b.add_systems(Phase::Measure, count_rows.run_if(sample_step));
        b.memory_unit("agent", agents as u64);
        b.checkpoint_resource::<ReplayState>();
        b.spawn_batch((0..agents).map(|_| Agent::default()));
        Ok(())
    }

    fn requires(&self) -> &'static [&'static str] {
        &[super::world::Gridworld::NAME]
    }
}

fn replay(
    mut st: ResMut<ReplayState>,
    model: Res<Model>,
    clock: Res<Clock>,
    mut files: ResMut<OutputFiles>,
) {
    let st = &mut *st;
    let s_n = model.states;
    let t = clock.step - 1;
    st.rows = 0;
    while let Some(&r) = st.trace.records.get(st.cursor) {
        if r.t as u64 != t {
            break;
        }
        st.cursor += 1;
        st.rows += 1;
        let a = r.agent as usize;
        let prior = &mut st.prior[a * s_n..(a + 1) * s_n];
        rf::infer(&model, prior, r.obs as usize, &mut st.post);
        let (neg, q_pi) = rf::plan(&model, &st.post, st.gamma, &mut st.work);
        if let Some(id) = st.file {
            let (post, id_) = (&st.post, st.trace.ids[a]);
            let pr: &[f64] = prior;
            files.write(id, |w| {
                write!(w, "{id_},{},{},{}", r.t, r.obs, r.action)?;
                for x in q_pi.iter().chain(&neg).chain(pr).chain(post) {
                    write!(w, ",{x}")?;
                }
                writeln!(w)
            });
        }
        rf::predict(&model, &st.post, r.action as usize, prior);
    }
}

fn count_rows(st: Res<ReplayState>, col: Res<RowsColumn>, mut m: ResMut<Metrics>) {
    m.set(col.0, st.rows as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_errors_name_the_line() {
        let ok = Trace::parse("agent,t,obs,action\n7,0,1,2\n3,0,0,0\n7,1,0,4\n", 4).unwrap();
        assert_eq!(ok.ids, vec![3, 7]);
        assert_eq!(ok.records.len(), 3);
        assert_eq!((ok.records[2].t, ok.records[2].agent), (1, 1));
        for (bad, msg) in [
            ("agent,t,obs\n", "line 1: header"),
            ("0,0,9,1\n", "line 1: obs 9"),
            ("0,0,1,5\n", "line 1: action 5"),
            ("0,0,1\n", "line 1: expected"),
            ("0,0,1,1\n0,2,1,1\n", "line 2: agent 0 has t = 2"),
            ("0,0,1,1\n0,0,1,1\n", "line 2: agent 0 has t = 0"),
            ("0,-1,1,1\n", "line 1: t `-1`"),
            ("", "no records"),
        ] {
            let e = Trace::parse(bad, 4).unwrap_err();
            assert!(e.starts_with(msg), "{bad:?}: {e}");
        }
    }
}
