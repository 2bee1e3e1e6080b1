//! Where each plot goes: the original's layout table (DESIGN.md §1) for its five combinations,
//! and the combinations it lacks (DVS alone, DVS + readout, DVS + power, and no DVS), which
//! crash the original with a KeyError.

/// A plot of the dashboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plot {
    /// Sensor events.
    Dvs,
    /// Spike counts per class over time.
    SpikeCount,
    /// Picture of the predicted class.
    Readout,
    /// Power per rail.
    Power,
}

/// A rectangle as fractions of the window: (left, top, right, bottom).
pub type Frac = [f32; 4];

/// The layout of the chosen plots.
pub fn layout(dvs: bool, spike: bool, readout: bool, power: bool) -> Vec<(Plot, Frac)> {
    use Plot::*;
    let top: Vec<Plot> = [(dvs, Dvs), (spike, SpikeCount), (readout, Readout)].into_iter().filter(|(on, _)| *on).map(|(_, p)| p).collect();
    // The original's table, reproduced exactly where it exists.
    let table: Option<Vec<(Plot, Frac)>> = match (dvs, spike, readout, power) {
        (true, true, false, false) => Some(vec![(Dvs, [0.0, 0.0, 0.5, 1.0]), (SpikeCount, [0.5, 0.0, 1.0, 1.0])]),
        (true, true, false, true) => {
            Some(vec![(Dvs, [0.0, 0.0, 0.5, 0.66]), (SpikeCount, [0.5, 0.0, 1.0, 0.66]), (Power, [0.0, 0.66, 1.0, 1.0])])
        }
        (true, false, true, true) => {
            Some(vec![(Dvs, [0.0, 0.0, 0.5, 0.66]), (Readout, [0.5, 0.0, 1.0, 0.66]), (Power, [0.0, 0.66, 1.0, 1.0])])
        }
        (true, true, true, false) => {
            Some(vec![(Dvs, [0.0, 0.0, 0.33, 1.0]), (SpikeCount, [0.33, 0.0, 0.66, 1.0]), (Readout, [0.66, 0.0, 1.0, 1.0])])
        }
        (true, true, true, true) => Some(vec![
            (Dvs, [0.0, 0.0, 0.33, 0.66]),
            (SpikeCount, [0.33, 0.0, 0.66, 0.66]),
            (Readout, [0.66, 0.0, 1.0, 0.66]),
            (Power, [0.0, 0.66, 1.0, 1.0]),
        ]),
        _ => None,
    };
    if let Some(t) = table {
        return t;
    }
    // Every other combination: the top plots share the width; power takes the bottom third,
    // or everything when alone.
    let bottom = if top.is_empty() {
        0.0
    } else if power {
        0.66
    } else {
        1.0
    };
    let mut out: Vec<(Plot, Frac)> = top
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let w = 1.0 / top.len() as f32;
            (p, [i as f32 * w, 0.0, (i + 1) as f32 * w, bottom])
        })
        .collect();
    if power {
        out.push((Power, [0.0, bottom, 1.0, 1.0]));
    }
    out
}
