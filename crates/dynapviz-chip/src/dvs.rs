//! The chip's DVS layer: sensor event -> (channel, y, x) of the first layer's input, by polarity
//! merge, sum pooling (a coordinate division), crop and mirroring, in the chip's order.

use dynapviz_events::Event;
use dynapviz_model::network::DvsLayer;

use crate::cascade::Pending;
use crate::layer::Site;
use crate::sim::{InputCounters, LayerCounters, Spike};

/// Why a sensor event did not reach the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Outside the network's input (H, W).
    OutOfRange,
    /// Removed by the DVS layer's crop.
    Cropped,
}

/// Maps a sensor event to the first layer's input site.
#[inline]
pub fn map(dvs: &DvsLayer, e: &Event) -> Result<(usize, usize, usize), Rejected> {
    let [_, h, w] = dvs.input_shape;
    let (x, y) = (usize::from(e.x), usize::from(e.y));
    if x >= w || y >= h {
        return Err(Rejected::OutOfRange);
    }
    let c = if dvs.merge_polarities { 0 } else { usize::from(e.p) };
    let (mut y, mut x) = (y / dvs.pool[0], x / dvs.pool[1]);
    let (mut ph, mut pw) = (h / dvs.pool[0], w / dvs.pool[1]);
    if y >= ph || x >= pw {
        return Err(Rejected::OutOfRange);
    }
    if let Some(c) = dvs.crop {
        if y < c.y0 || y >= c.y1 || x < c.x0 || x >= c.x1 {
            return Err(Rejected::Cropped);
        }
        (y, x) = (y - c.y0, x - c.x0);
        (ph, pw) = (c.y1 - c.y0, c.x1 - c.x0);
    }
    if dvs.flip_x {
        x = pw - 1 - x;
    }
    if dvs.flip_y {
        y = ph - 1 - y;
    }
    if dvs.swap_xy {
        (y, x) = (x, y);
    }
    Ok((c, y, x))
}

/// The simulator's entrance: puts sensor events in time order, maps them through the DVS layer
/// and counts what it cannot use.
#[derive(Clone, Debug)]
pub(crate) struct Front {
    pub dvs: DvsLayer,
    /// Time of the last admitted event, µs.
    pub last_t: Option<i64>,
    pub input: InputCounters,
}

impl Front {
    /// The time and first-layer site of `e`, or `None` when it is dropped (and counted). An
    /// event earlier than its predecessor takes the predecessor's time, or is dropped when
    /// `drop_late` (binned mode: its bin was already simulated). Counts admitted events in
    /// `dvs` (the DVS layer's counters).
    #[inline]
    pub fn admit(&mut self, e: &Event, drop_late: bool, dvs: &mut LayerCounters) -> Option<(i64, Site)> {
        let t = match self.last_t {
            Some(last) if e.t < last => {
                self.input.time_backwards += 1;
                if drop_late {
                    return None;
                }
                last
            }
            _ => e.t,
        };
        self.last_t = Some(t);
        let site = match map(&self.dvs, e) {
            Ok((c, y, x)) => Site { c: c as u16, y: y as u16, x: x as u16 },
            Err(Rejected::OutOfRange) => {
                self.input.out_of_range += 1;
                return None;
            }
            Err(Rejected::Cropped) => {
                self.input.cropped += 1;
                return None;
            }
        };
        dvs.input_events += 1;
        dvs.spikes_after_pool += 1;
        Some((t, site))
    }

    /// Event mode: admits `e` as event `index` of a batch, queues its site for the first layer
    /// and, when the DVS layer is monitored, tags its spike in `tagged`. Returns its time.
    #[inline]
    pub fn admit_to(
        &mut self,
        e: &Event,
        index: u32,
        dvs: &mut LayerCounters,
        monitored: bool,
        first_layer: &mut Vec<Pending>,
        tagged: &mut Vec<(u32, Spike)>,
    ) -> Option<i64> {
        let (t, site) = self.admit(e, false, dvs)?;
        if monitored {
            tagged.push((index, Spike { t, layer: 0, c: site.c, y: site.y, x: site.x }));
        }
        first_layer.push(Pending { index, t_ns: t * 1000, site });
        Some(t)
    }
}
