//! The chip's DVS layer: sensor event -> (channel, y, x) of the first layer's input, by polarity
//! merge, sum pooling (a coordinate division), crop and mirroring, in the chip's order.

use dynapviz_events::Event;
use dynapviz_model::network::DvsLayer;

use crate::cascade::Queue;
use crate::layer::Site;
use crate::sim::{InputCounters, LayerCounters, MAX_TIME_US, Spike};

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
    let (rows, cols) = axes(dvs);
    let (y, x) = (rows.map(usize::from(e.y)), cols.map(usize::from(e.x)));
    let (y, x) = match (y, x) {
        (Ok(y), Ok(x)) => (y, x),
        (Err(Rejected::OutOfRange), _) | (_, Err(Rejected::OutOfRange)) => return Err(Rejected::OutOfRange),
        _ => return Err(Rejected::Cropped),
    };
    let c = if dvs.merge_polarities { 0 } else { usize::from(e.p) };
    Ok(if dvs.swap_xy { (c, x, y) } else { (c, y, x) })
}

/// What the DVS layer does along one sensor axis: pooling, crop, mirroring. The axes are
/// independent until the final swap.
#[derive(Clone, Copy, Debug)]
struct Axis {
    /// Sensor pixels.
    size: usize,
    pool: usize,
    /// Kept after pooling: `keep.0..keep.1`.
    keep: (usize, usize),
    flip: bool,
}

fn axes(dvs: &DvsLayer) -> (Axis, Axis) {
    let [_, h, w] = dvs.input_shape;
    let pool = dvs.pool.map(|p| p.max(1));
    let (rows, cols) = match dvs.crop {
        Some(c) => ((c.y0, c.y1), (c.x0, c.x1)),
        None => ((0, h / pool[0]), (0, w / pool[1])),
    };
    (Axis { size: h, pool: pool[0], keep: rows, flip: dvs.flip_y }, Axis { size: w, pool: pool[1], keep: cols, flip: dvs.flip_x })
}

impl Axis {
    /// Where sensor coordinate `v` lands.
    fn map(self, v: usize) -> Result<usize, Rejected> {
        let pooled = v / self.pool;
        if v >= self.size || pooled >= self.size / self.pool {
            return Err(Rejected::OutOfRange);
        }
        let (start, end) = self.keep;
        if pooled < start || pooled >= end {
            return Err(Rejected::Cropped);
        }
        let v = pooled - start;
        Ok(if self.flip { end - start - 1 - v } else { v })
    }

    /// [`Self::map`] for every sensor coordinate, as a table.
    fn table(self) -> Vec<u16> {
        (0..self.size)
            .map(|v| match self.map(v) {
                Ok(v) => v as u16,
                Err(Rejected::OutOfRange) => OUT_OF_RANGE,
                Err(Rejected::Cropped) => CROPPED,
            })
            .collect()
    }
}

/// Table entries of rejected coordinates (first-layer inputs are far smaller).
const OUT_OF_RANGE: u16 = u16::MAX;
const CROPPED: u16 = u16::MAX - 1;

/// The simulator's entrance: puts sensor events in time order, maps them through the DVS layer
/// and counts what it cannot use.
#[derive(Clone, Debug)]
pub(crate) struct Front {
    /// Where each sensor row and column lands ([`map`] as tables: no division per event).
    rows: Vec<u16>,
    cols: Vec<u16>,
    merge_polarities: bool,
    swap_xy: bool,
    /// Time of the last admitted event, µs.
    pub last_t: Option<i64>,
    pub input: InputCounters,
}

impl Front {
    pub fn new(dvs: &DvsLayer) -> Self {
        let (rows, cols) = axes(dvs);
        Self {
            rows: rows.table(),
            cols: cols.table(),
            merge_polarities: dvs.merge_polarities,
            swap_xy: dvs.swap_xy,
            last_t: None,
            input: InputCounters::default(),
        }
    }

    /// The time and first-layer site of `e`, or `None` when it is dropped (and counted). An
    /// event earlier than its predecessor takes the predecessor's time, or is dropped when
    /// `drop_late` (binned mode: its bin was already simulated). Counts admitted events in
    /// `dvs` (the DVS layer's counters).
    #[inline]
    pub fn admit(&mut self, e: &Event, drop_late: bool, dvs: &mut LayerCounters) -> Option<(i64, Site)> {
        let mut admitting = Admitting::from(&*self);
        let admitted = self.map_event(e, drop_late, &mut admitting);
        admitting.end(self, dvs);
        admitted
    }

    /// Event mode: admits a batch of sensor events in order. Each admitted one, event `i` of
    /// the batch at time `t`, is queued for the first layer, tagged in `tagged` when the DVS
    /// layer is monitored, and handed to `admitted(i, t)`. The last time and the counters stay
    /// in registers over the batch, not in memory: this runs for every sensor event.
    #[inline]
    pub fn admit_batch(
        &mut self,
        events: &[Event],
        dvs: &mut LayerCounters,
        monitored: bool,
        first_layer: &mut Queue,
        tagged: &mut Vec<(u32, Spike)>,
        mut admitted: impl FnMut(usize, i64),
    ) {
        let mut admitting = Admitting::from(&*self);
        for (i, e) in events.iter().enumerate() {
            let Some((t, site)) = self.map_event(e, false, &mut admitting) else { continue };
            if monitored {
                tagged.push((i as u32, Spike { t, layer: 0, c: site.c, y: site.y, x: site.x }));
            }
            first_layer.push_site(i as u32, t * 1000, site);
            admitted(i, t);
        }
        admitting.end(self, dvs);
    }

    /// [`Self::admit`] with the last time and the counters in `admitting`.
    #[inline(always)]
    fn map_event(&self, e: &Event, drop_late: bool, admitting: &mut Admitting) -> Option<(i64, Site)> {
        if e.t.unsigned_abs() > MAX_TIME_US as u64 {
            admitting.input.time_out_of_range += 1;
            return None;
        }
        let t = match admitting.last_t {
            Some(last) if e.t < last => {
                admitting.input.time_backwards += 1;
                if drop_late {
                    return None;
                }
                last
            }
            _ => e.t,
        };
        admitting.last_t = Some(t);
        let y = self.rows.get(usize::from(e.y)).copied().unwrap_or(OUT_OF_RANGE);
        let x = self.cols.get(usize::from(e.x)).copied().unwrap_or(OUT_OF_RANGE);
        if y >= CROPPED || x >= CROPPED {
            if y == OUT_OF_RANGE || x == OUT_OF_RANGE {
                admitting.input.out_of_range += 1;
            } else {
                admitting.input.cropped += 1;
            }
            return None;
        }
        let c = if self.merge_polarities { 0 } else { u16::from(e.p) };
        let site = if self.swap_xy { Site { c, y: x, x: y } } else { Site { c, y, x } };
        admitting.admitted += 1;
        Some((t, site))
    }
}

/// What admitting changes, in locals while it runs: see [`Front::admit_batch`].
struct Admitting {
    last_t: Option<i64>,
    input: InputCounters,
    admitted: u64,
}

impl From<&Front> for Admitting {
    fn from(front: &Front) -> Self {
        Self { last_t: front.last_t, input: front.input, admitted: 0 }
    }
}

impl Admitting {
    /// Stores what was admitted in the front and the DVS layer's counters.
    fn end(self, front: &mut Front, dvs: &mut LayerCounters) {
        (front.last_t, front.input) = (self.last_t, self.input);
        dvs.input_events += self.admitted;
        dvs.spikes_after_pool += self.admitted;
    }
}

#[cfg(test)]
mod tests {
    use dynapviz_model::network::Crop;

    use super::*;

    /// The DVS layer written out directly, coordinate by coordinate, as the chip documents it.
    fn expected(dvs: &DvsLayer, e: &Event) -> Result<(usize, usize, usize), Rejected> {
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

    #[test]
    fn the_tables_map_every_pixel_as_the_dvs_layer_does() {
        let crops = [None, Some(Crop { y0: 1, y1: 5, x0: 2, x1: 7 })];
        let mut configs = 0;
        for pool in [[1, 1], [2, 2], [3, 2]] {
            for crop in crops {
                for bits in 0..16u8 {
                    let [h, w] = [13, 17];
                    let dvs = DvsLayer {
                        input_shape: [2, h, w],
                        merge_polarities: bits & 1 != 0,
                        pool,
                        crop,
                        flip_x: bits & 2 != 0,
                        flip_y: bits & 4 != 0,
                        swap_xy: bits & 8 != 0,
                        output_shape: [2, h / pool[0], w / pool[1]],
                        destinations: vec![1],
                    };
                    let mut front = Front::new(&dvs);
                    let mut counters = LayerCounters::default();
                    let (mut out_of_range, mut cropped) = (0, 0);
                    for y in 0..h as u16 + 3 {
                        for x in 0..w as u16 + 3 {
                            let e = Event::new(0, x, y, (x + y) % 2 == 0);
                            let want = expected(&dvs, &e);
                            assert_eq!(map(&dvs, &e), want, "{dvs:?} at ({x}, {y})");
                            let got =
                                front.admit(&e, false, &mut counters).map(|(_, s)| (usize::from(s.c), usize::from(s.y), usize::from(s.x)));
                            assert_eq!(got, want.ok(), "{dvs:?} at ({x}, {y})");
                            match want {
                                Err(Rejected::OutOfRange) => out_of_range += 1,
                                Err(Rejected::Cropped) => cropped += 1,
                                Ok(_) => {}
                            }
                        }
                    }
                    assert_eq!((front.input.out_of_range, front.input.cropped), (out_of_range, cropped));
                    configs += 1;
                }
            }
        }
        assert_eq!(configs, 96);
    }
}
