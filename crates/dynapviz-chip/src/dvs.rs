//! The chip's DVS layer: sensor event -> (channel, y, x) of the first layer's input, by polarity
//! merge, sum pooling (a coordinate division), crop and mirroring, in the chip's order.

use dynapviz_events::Event;
use dynapviz_model::network::DvsLayer;

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
