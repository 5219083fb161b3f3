//! `helixflow usage`: a tenant's usage as a table, one row per group and time.

use crate::client::Client;
use crate::routes;
use anyhow::Result;
use clap::Args;

// `helixflow usage` (its help text is the `Command::Usage` variant's).
#[derive(Args)]
pub struct UsageArgs {
    #[arg(long, short)]
    tenant: String,
    /// Start: RFC 3339 or Unix seconds (default: an hour before --to).
    #[arg(long)]
    from: Option<String>,
    /// End: RFC 3339 or Unix seconds (default: now).
    #[arg(long)]
    to: Option<String>,
    /// 1m, 1h or 1d (default: the finest that gives at most 1440 points).
    #[arg(long)]
    step: Option<String>,
    /// Comma-separated: function, version, trigger, location, key, model.
    #[arg(long)]
    group_by: Option<String>,
    /// Comma-separated, e.g. requests,errors,latency_p95,gb_seconds,embedding_tokens.
    #[arg(long)]
    metrics: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(c: &Client, args: UsageArgs) -> Result<()> {
    let mut query = Vec::new();
    for (k, v) in [
        ("from", &args.from),
        ("to", &args.to),
        ("step", &args.step),
        ("group_by", &args.group_by),
        ("metrics", &args.metrics),
    ] {
        if let Some(v) = v {
            query.push((k, v.as_str()));
        }
    }
    let v = c
        .json(
            http::Method::GET,
            &routes::usage(&args.tenant, &query),
            None,
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let metrics: Vec<&str> = v["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let group_by: Vec<&str> = v["group_by"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .collect();
    let mut rows = vec![
        std::iter::once("time")
            .chain(group_by.iter().copied())
            .chain(metrics.iter().copied())
            .map(str::to_string)
            .collect::<Vec<_>>(),
    ];
    let show = |x: &serde_json::Value| match x {
        serde_json::Value::Number(n) if n.is_f64() => format!("{:.3}", n.as_f64().unwrap_or(0.0)),
        serde_json::Value::Null => "-".into(),
        other => other.to_string().trim_matches('"').to_string(),
    };
    for s in v["series"].as_array().into_iter().flatten() {
        for p in s["points"].as_array().into_iter().flatten() {
            let mut row = vec![show(&p["time"])];
            row.extend(group_by.iter().map(|g| show(&s["group"][*g])));
            row.extend(metrics.iter().map(|m| show(&p[*m])));
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    // In a terminal, a small chart per series: the first metric over time.
    if std::io::IsTerminal::is_terminal(&std::io::stdout())
        && let Some(first) = metrics.first()
    {
        println!();
        for s in v["series"].as_array().into_iter().flatten() {
            let values: Vec<f64> = s["points"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p[*first].as_f64().unwrap_or(0.0))
                .collect();
            let label: Vec<String> = group_by.iter().map(|g| show(&s["group"][*g])).collect();
            let label = if label.is_empty() {
                "all".to_string()
            } else {
                label.join("/")
            };
            println!("{label:<24} {first:<12} {}", sparkline(&values));
        }
    }
    Ok(())
}

/// Values as a row of block characters, scaled from 0 to their maximum.
fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 || !v.is_finite() {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

// `helixflow budget` (its help text is the `Command::Budget` variant's).
#[derive(Args)]
pub struct BudgetArgs {
    #[arg(long, short)]
    tenant: String,
    /// Set the budget to this JSON (`{"tenant": {"monthly_spend": 100, "rpm": 600}, "callers": {...}}`).
    #[arg(long, conflicts_with = "remove")]
    set: Option<String>,
    /// Remove the budget.
    #[arg(long)]
    remove: bool,
}

pub async fn budget(c: &Client, args: BudgetArgs) -> Result<()> {
    let path = routes::budget(&args.tenant);
    let v = if let Some(json) = &args.set {
        let body: serde_json::Value =
            serde_json::from_str(json).map_err(|e| anyhow::anyhow!("--set is not JSON: {e}"))?;
        c.json(http::Method::PUT, &path, Some(body)).await?
    } else if args.remove {
        c.json(http::Method::DELETE, &path, None).await?
    } else {
        c.json(http::Method::GET, &path, None).await?
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sparklines_scale_to_the_maximum() {
        assert_eq!(super::sparkline(&[0.0, 5.0, 10.0]), "▁▅█");
        assert_eq!(super::sparkline(&[0.0, 0.0]), "▁▁");
        assert_eq!(super::sparkline(&[]), "");
    }
}
