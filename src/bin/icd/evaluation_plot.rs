//! `icd evaluate --plot FILE.svg`: the precision-recall curve and the reliability
//! diagram side by side, drawn with plotters as one SVG.

use insecure_code_detector::evaluation::{
    precision_recall_curve, reliability_bins, Scored, CALIBRATION_BINS,
};
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
    let mut chart = ChartBuilder::on(&left)
        .caption("Precision-recall", ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
    chart
        .configure_mesh()
        .x_desc("recall")
        .y_desc("precision")
        .draw()?;
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
    let mut chart = ChartBuilder::on(&right)
        .caption(
            format!("Reliability ({CALIBRATION_BINS} bins)"),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
    chart
        .configure_mesh()
        .x_desc("mean insecure probability")
        .y_desc("share insecure")
        .draw()?;
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
