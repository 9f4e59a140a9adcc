//! The dashboard's charts: server-rendered SVG drawn with plotters (its SVG backend writes
//! `<text>` elements, so no font files are needed). A chart with no data says so instead.

use plotters::prelude::*;

use super::data::Series;

const SIZE: (u32, u32) = (640, 300);

fn palette(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

fn empty(title: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let _ = root.titled(title, ("sans-serif", 18));
        let _ = root.draw(&Text::new("no data yet", (SIZE.0 as i32 / 2 - 40, SIZE.1 as i32 / 2), ("sans-serif", 14)));
        let _ = root.present();
    }
    svg
}

/// One line per series over the dates of all series (a date a series lacks is a gap).
pub fn lines(title: &str, data: &Series, percent: bool) -> String {
    let mut dates: Vec<&str> = data.values().flatten().map(|(d, _)| d.as_str()).collect();
    dates.sort_unstable();
    dates.dedup();
    if dates.is_empty() {
        return empty(title);
    }
    let max = data.values().flatten().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let min = data.values().flatten().map(|(_, v)| *v).fold(0.0_f64, f64::min);
    let top = if max <= min { min + 1.0 } else { max + (max - min) * 0.05 };
    let mut svg = String::new();
    match draw_lines(&mut svg, title, data, percent, &dates, min, top) {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!("chart {title:?}: {e}");
            empty(title)
        }
    }
}

type Drawn = Result<(), Box<dyn std::error::Error>>;

fn draw_lines(svg: &mut String, title: &str, data: &Series, percent: bool, dates: &[&str], min: f64, top: f64) -> Drawn {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let last = dates.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d(0..last, min..top)?;
        let labels = dates.to_vec();
        chart
            .configure_mesh()
            .x_labels(dates.len().min(8))
            .x_label_formatter(&|i| labels.get(*i).map(|d| d.get(5..).unwrap_or(d).to_string()).unwrap_or_default())
            .y_label_formatter(&|v| if percent { format!("{:.1}%", v * 100.0) } else { compact(*v) })
            .draw()?;
        for (i, (name, points)) in data.iter().enumerate() {
            let color = palette(i);
            let xy: Vec<(usize, f64)> = points.iter().filter_map(|(d, v)| dates.iter().position(|x| x == d).map(|x| (x, *v))).collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperLeft).background_style(WHITE.mix(0.85)).border_style(BLACK.mix(0.3)).draw()?;
        root.present()?;
        Ok(())
}

/// A bar chart: one bar per (label, value), in the given order.
pub fn bars(title: &str, data: &[(String, f64)]) -> String {
    if data.is_empty() {
        return empty(title);
    }
    let max = data.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1.0);
    let mut svg = String::new();
    match draw_bars(&mut svg, title, data, max) {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!("chart {title:?}: {e}");
            empty(title)
        }
    }
}

fn draw_bars(svg: &mut String, title: &str, data: &[(String, f64)], max: f64) -> Drawn {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let n = data.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n).into_segmented(), 0.0..max * 1.05)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|s| match s {
                SegmentValue::CenterOf(i) => data.get(*i).map(|(l, _)| short(l)).unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", 10))
            .y_label_formatter(&|v| compact(*v))
            .draw()?;
        chart.draw_series(data.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), *v)], palette(0).filled());
            bar.set_margin(0, 0, 6, 6);
            bar
        }))?;
        root.present()?;
        Ok(())
}

fn short(label: &str) -> String {
    if label.chars().count() > 14 {
        format!("{}…", label.chars().take(13).collect::<String>())
    } else {
        label.to_string()
    }
}

/// 1234567 → "1.2M".
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_their_data() {
        let mut s = Series::new();
        s.insert("acme (USD)".into(), vec![("2026-11-18".into(), 100.0), ("2026-11-19".into(), 250.5)]);
        s.insert("globex (EUR)".into(), vec![("2026-11-19".into(), 80.0)]);
        let svg = lines("Net revenue", &s, false);
        assert!(svg.starts_with("<svg") && svg.contains("Net revenue") && svg.contains("acme (USD)") && svg.contains("11-19"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "lines are drawn");
        let svg = bars("Top categories", &[("Garden (USD)".into(), 12.0), ("A very long category name (USD)".into(), 3.0)]);
        assert!(svg.contains("Garden (USD)") && svg.contains("<rect"), "{svg}");
        assert!(lines("Empty", &Series::new(), true).contains("no data yet"));
        assert_eq!(compact(1_234_567.0), "1.2M");
    }
}
