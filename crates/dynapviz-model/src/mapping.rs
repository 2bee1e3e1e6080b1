//! Layer-to-core mapping. "auto" is sinabs' maximum bipartite matching by Edmonds-Karp with the
//! same graph construction and edge order, so it picks the same cores sinabs picks
//! (DESIGN.md §4); a user-given ordering is validated instead.

use std::collections::VecDeque;

use crate::chip::{ChipProfile, MemoryUse};
use crate::error::{ModelError, Result};
use crate::network::Network;

struct Edge {
    to: usize,
    cap: i32,
    flow: i32,
    rev: usize,
}

struct Graph {
    adj: Vec<Vec<Edge>>,
}

impl Graph {
    fn add_edge(&mut self, s: usize, t: usize) {
        let (rs, rt) = (self.adj[t].len(), self.adj[s].len());
        self.adj[s].push(Edge { to: t, cap: 1, flow: 0, rev: rs });
        self.adj[t].push(Edge { to: s, cap: 0, flow: 0, rev: rt });
    }

    /// Edmonds-Karp: BFS augmenting paths; edges visited in insertion order, first
    /// predecessor wins.
    fn max_flow(&mut self, source: usize, sink: usize) {
        loop {
            let mut pred: Vec<Option<(usize, usize)>> = vec![None; self.adj.len()];
            let mut q = VecDeque::from([source]);
            while let Some(cur) = q.pop_front() {
                for (ei, e) in self.adj[cur].iter().enumerate() {
                    if pred[e.to].is_none() && e.to != source && e.cap > e.flow {
                        pred[e.to] = Some((cur, ei));
                        q.push_back(e.to);
                    }
                }
            }
            if pred[sink].is_none() {
                return;
            }
            let mut node = sink;
            while let Some((from, ei)) = pred[node] {
                let rev = self.adj[from][ei].rev;
                self.adj[from][ei].flow += 1;
                self.adj[node][rev].flow -= 1;
                node = from;
            }
        }
    }
}

/// The cores each layer fits, in ascending order.
pub fn candidates(network: &Network, profile: &ChipProfile) -> Vec<Vec<usize>> {
    network
        .layers
        .iter()
        .map(|l| {
            let mem = MemoryUse::of(l);
            profile.cores.iter().enumerate().filter(|(_, c)| mem.misfit(c).is_none()).map(|(i, _)| i).collect()
        })
        .collect()
}

/// Explains why no complete matching exists: per layer its candidate cores, and for the others
/// why they are too small.
fn explain(network: &Network, profile: &ChipProfile, cands: &[Vec<usize>], unmatched: &[usize]) -> String {
    let mut lines = Vec::new();
    for (li, l) in network.layers.iter().enumerate() {
        let mem = MemoryUse::of(l);
        let mark = if unmatched.contains(&li) { " <- left without a core" } else { "" };
        lines.push(format!("layer {} fits cores {:?}{mark}", l.index, cands[li]));
        if unmatched.contains(&li) {
            for (ci, c) in profile.cores.iter().enumerate() {
                if let Some(why) = mem.misfit(c) {
                    lines.push(format!("  core {ci} is too small: {why}"));
                }
            }
        }
    }
    // The competing set: the unmatched layers' candidates and every layer that shares them.
    let contested: Vec<usize> = unmatched.iter().flat_map(|&li| cands[li].iter().copied()).collect();
    let rivals: Vec<usize> =
        (0..cands.len()).filter(|&li| cands[li].iter().any(|c| contested.contains(c))).map(|li| network.layers[li].index).collect();
    let mut contested_sorted = contested;
    contested_sorted.sort_unstable();
    contested_sorted.dedup();
    lines.push(format!("layers {rivals:?} compete for cores {contested_sorted:?}, too few for all of them"));
    lines.join("\n")
}

/// Maps layers to cores with sinabs' "auto" algorithm and writes the cores into the network.
pub fn map_auto(network: &mut Network, profile: &ChipProfile) -> Result<Vec<usize>> {
    let cands = candidates(network, profile);
    let n_layers = cands.len();
    let n_cores = profile.cores.len();
    let mut g = Graph { adj: (0..n_layers + n_cores + 2).map(|_| Vec::new()).collect() };
    let target_offset = n_layers + 1;
    for (i, targets) in cands.iter().enumerate() {
        g.add_edge(0, i + 1);
        for &t in targets {
            g.add_edge(i + 1, t + target_offset);
        }
    }
    let sink = n_layers + n_cores + 1;
    for c in 0..n_cores {
        g.add_edge(c + target_offset, sink);
    }
    g.max_flow(0, sink);
    let mut cores = Vec::with_capacity(n_layers);
    let mut unmatched = Vec::new();
    for i in 0..n_layers {
        match g.adj[i + 1].iter().find(|e| e.flow == 1 && e.to >= target_offset) {
            Some(e) => cores.push(e.to - target_offset),
            None => unmatched.push(i),
        }
    }
    if !unmatched.is_empty() {
        return Err(ModelError::Mapping { device: profile.name.to_string(), explanation: explain(network, profile, &cands, &unmatched) });
    }
    apply(network, profile, &cores);
    Ok(cores)
}

/// Validates a user-given ordering (core of layer 1, layer 2, ...) and applies it.
pub fn map_manual(network: &mut Network, profile: &ChipProfile, cores: &[usize]) -> Result<()> {
    let mut problems = Vec::new();
    if cores.len() != network.layers.len() {
        problems.push(format!("{} cores given for {} layers", cores.len(), network.layers.len()));
    }
    for (i, (&c, l)) in cores.iter().zip(&network.layers).enumerate() {
        if c >= profile.cores.len() {
            problems.push(format!("layer {}: core {c} does not exist (0..{})", l.index, profile.cores.len() - 1));
        } else if let Some(why) = MemoryUse::of(l).misfit(&profile.cores[c]) {
            problems.push(format!("layer {}: core {c} is too small: {why}", l.index));
        }
        if cores[..i].contains(&c) {
            problems.push(format!("layer {}: core {c} is already used", l.index));
        }
    }
    if !problems.is_empty() {
        return Err(ModelError::Mapping { device: profile.name.to_string(), explanation: problems.join("\n") });
    }
    apply(network, profile, cores);
    Ok(())
}

fn apply(network: &mut Network, profile: &ChipProfile, cores: &[usize]) {
    for (l, &c) in network.layers.iter_mut().zip(cores) {
        l.core = Some(c);
    }
    network.device = Some(profile.name.to_string());
}
