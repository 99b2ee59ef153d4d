//! `icd evaluate --plot FILE.svg`: the precision-recall curve and the reliability
//! diagram side by side, drawn with plotters as one SVG.

use insecure_code_detector::evaluation::{
    precision_recall_curve, reliability_bins, Scored, CALIBRATION_BINS,
};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::Failure;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 460;

/// The two charts of `data` as an SVG document; `threshold` is marked on the curve.
pub fn evaluation_svg(data: &Scored, threshold: f64) -> Result<String, Failure> {
    let mut svg = String::new();
    draw(&mut svg, data, threshold).map_err(|e| Failure(format!("--plot: {e}")))?;
    Ok(svg)
}

fn draw(svg: &mut String, data: &Scored, threshold: f64) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);

    // Precision against recall, one point per distinct score, from recall 0 (where
    // precision is taken as 1, as scikit-learn starts the curve).
    let curve = precision_recall_curve(data);
    let mut chart = unit_square(&left, "Precision-recall", "recall", "precision")?;
    let base_rate = data.positive_count() as f64 / data.len() as f64;
    chart
        .draw_series(LineSeries::new(
            [(0.0, base_rate), (1.0, base_rate)],
            BLACK.mix(0.4),
        ))?
        .label(format!("base rate {base_rate:.3}"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    // Steps, not straight lines: average precision is the area under this step
    // function (each point's precision over the recall it adds), as scikit-learn
    // draws it.
    let mut points = vec![(0.0, 1.0)];
    let mut recall = 0.0;
    for p in &curve {
        points.extend([(recall, p.precision), (p.recall, p.precision)]);
        recall = p.recall;
    }
    chart
        .draw_series(LineSeries::new(points, &BLUE))?
        .label("model")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    // The operating point: the lowest-threshold point still at or above `threshold`.
    if let Some(at) = curve.iter().rev().find(|p| p.threshold >= threshold) {
        chart
            .draw_series(std::iter::once(Circle::new(
                (at.recall, at.precision),
                5,
                RED.filled(),
            )))?
            .label(format!("threshold {threshold}"))
            .legend(|(x, y)| Circle::new((x + 8, y), 4, RED.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.9))
        .draw()?;

    // Reliability: each non-empty bin's share insecure against its mean probability;
    // a calibrated model lies on the diagonal.
    let bins = reliability_bins(data, CALIBRATION_BINS);
    let caption = format!("Reliability ({CALIBRATION_BINS} bins)");
    let mut chart = unit_square(
        &right,
        &caption,
        "mean insecure probability",
        "share insecure",
    )?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.4)))?
        .label("calibrated")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    let filled: Vec<(f64, f64)> = bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.mean_probability, b.positive_rate))
        .collect();
    chart
        .draw_series(LineSeries::new(filled.iter().copied(), &BLUE))?
        .label("model")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    chart.draw_series(
        filled
            .iter()
            .map(|&(x, y)| Circle::new((x, y), 4, BLUE.filled())),
    )?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}

type UnitChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A chart of [0, 1] by [0, 1] (a little headroom above, so that a curve at 1 shows)
/// with its caption, axis names and grid drawn.
fn unit_square<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<UnitChart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}
