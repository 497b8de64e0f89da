//! The default demo's physics: mean-square displacement 6·D·t.

mod common;

#[test]
fn msd_matches_6_d_t_within_sampling_error() {
    let n = 30_000.0;
    let text = "[run]\nsteps = 50\nsample_every = 25\nseed = 5\n\
                [plugins.brownian]\nparticles = 30000\ndiffusion = 0.5\ndt = 0.02\nbox_length = 5.0\n\
                [plugins.msd]\n";
    let mut sim = common::sim(text, &microcosm::sims::registry(), 2, None);
    sim.run(|_, _| {});
    let m = sim.world().resource::<microcosm::engine::output::Metrics>();
    let (t, msd) = (m.get("time").unwrap(), m.get("msd").unwrap());
    assert_eq!(t, 1.0);
    // r² = 2Dt·χ²₃ per particle: mean 6Dt = 3, variance 6(2Dt)² = 6.
    let expect = 6.0 * 0.5 * t;
    let sd = (6.0f64 / n).sqrt();
    assert!(
        (msd - expect).abs() < 5.0 * sd,
        "msd {msd} vs {expect} ± {sd}"
    );
}
