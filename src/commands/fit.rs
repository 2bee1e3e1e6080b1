//! How a recording's pixels meet the network's input.

use std::path::Path;

use anyhow::{Context, Result};
use dynapviz_events::Geometry;
use dynapviz_streams::nodes::filter::Rescale;

/// The sensor size of a recording: the one the file states, else the smallest holding every
/// event (which takes a pass over the file; a live stream must state it, as it has no end).
pub fn sensor_size(path: &Path, stated: Option<Geometry>) -> Result<Geometry> {
    match stated {
        Some(g) => Ok(g),
        None if dynapviz_events::net::is_live(path) => {
            anyhow::bail!("{}: the stream states no sensor size (sizeX, sizeY)", path.display())
        }
        None => dynapviz_events::inspect(path)?
            .summary
            .geometry_or_extent(None)
            .with_context(|| format!("{}: the recording holds no events", path.display())),
    }
}

/// The rescale (samna's `DvsEventRescale`) that fits a recording onto a network input of size
/// `input`, with the sensor size it fits; `None` when the pixels land as they are. A size the
/// file states is trusted. Without one the events' extent decides, and only when it reaches
/// past the input: a recording that fits is not stretched.
pub fn input_rescale(path: &Path, stated: Option<Geometry>, input: Geometry) -> Result<Option<(Geometry, Rescale)>> {
    let sensor = sensor_size(path, stated)?;
    let fits = match stated {
        Some(g) => g == input,
        None => sensor.width <= input.width && sensor.height <= input.height,
    };
    if fits {
        return Ok(None);
    }
    tracing::info!("rescaling the {sensor} sensor to the {input} network input");
    Ok(Some((sensor, Rescale::fit(sensor, input)?)))
}
