//! `images`, `inspect`, `history`.

use std::process::ExitCode;

use anyhow::Result;
use bale::image::{load_image, Image, PlatformSpec};
use bale::store::Store;
use serde_json::json;

use super::{human_size, is_json, print_json, resolve_image};
use crate::OutputFormat;

pub fn images(store: &Store, platform: &PlatformSpec, format: OutputFormat) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for (name, desc) in store.tagged()? {
        // An image of another platform only, or a broken one, is still
        // listed, without the details.
        let image = load_image(store, &desc, platform).ok();
        rows.push(json!({
            "name": name,
            "digest": desc.digest().to_string(),
            "size": image.as_ref().map(Image::size),
            "created": image.as_ref().and_then(|i| i.created().map(str::to_owned)),
        }));
    }
    if is_json(format) {
        print_json(&json!(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<40} {:<20} {:>10}  CREATED", "NAME", "DIGEST", "SIZE");
    for row in rows {
        let digest = row["digest"].as_str().unwrap_or("");
        println!(
            "{:<40} {:<20} {:>10}  {}",
            row["name"].as_str().unwrap_or(""),
            digest.get(..19).unwrap_or(digest),
            row["size"].as_u64().map_or("?".into(), human_size),
            row["created"].as_str().unwrap_or("-"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(
    store: &Store,
    platform: &PlatformSpec,
    wanted: &str,
    format: OutputFormat,
) -> Result<ExitCode> {
    let (name, image) = resolve_image(store, platform, wanted)?;
    let layers: Vec<_> = image
        .layers()
        .iter()
        .zip(&image.diff_ids)
        .map(|(l, d)| {
            json!({
                "digest": l.digest().to_string(),
                "mediaType": l.media_type().to_string(),
                "size": l.size(),
                "diffID": d.to_string(),
            })
        })
        .collect();
    let value = json!({
        "name": name,
        "digest": image.manifest_digest.to_string(),
        "size": image.size(),
        "manifest": image.manifest,
        "config": image.config_json,
        "layers": layers,
        "history": image.config.history(),
    });
    if is_json(format) {
        print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = image.config.config().clone().unwrap_or_default();
    println!("Name:         {name}");
    println!("Digest:       {}", image.manifest_digest);
    println!("Config:       {}", image.config_digest);
    println!(
        "Platform:     {}/{}",
        image.config.os(),
        image.config.architecture()
    );
    println!("Created:      {}", image.created().unwrap_or("-"));
    println!("Size:         {}", human_size(image.size()));
    println!(
        "Entrypoint:   {:?}",
        cfg.entrypoint().clone().unwrap_or_default()
    );
    println!("Cmd:          {:?}", cfg.cmd().clone().unwrap_or_default());
    println!("User:         {}", cfg.user().clone().unwrap_or_default());
    println!(
        "WorkingDir:   {}",
        cfg.working_dir().clone().unwrap_or_default()
    );
    println!("Env:");
    for e in cfg.env().clone().unwrap_or_default() {
        println!("  {e}");
    }
    println!("Layers:");
    for l in layers {
        println!(
            "  {}  {:>10}  {}",
            l["digest"].as_str().unwrap_or(""),
            human_size(l["size"].as_u64().unwrap_or(0)),
            l["mediaType"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn history(
    store: &Store,
    platform: &PlatformSpec,
    wanted: &str,
    format: OutputFormat,
) -> Result<ExitCode> {
    let (_, image) = resolve_image(store, platform, wanted)?;
    let mut layers = image.layers().iter();
    let mut rows = Vec::new();
    for h in image.config.history().clone().unwrap_or_default() {
        let empty = h.empty_layer().unwrap_or(false);
        let layer = if empty { None } else { layers.next() };
        rows.push(json!({
            "created": h.created(),
            "createdBy": h.created_by(),
            "comment": h.comment(),
            "author": h.author(),
            "emptyLayer": empty,
            "layer": layer.map(|l| l.digest().to_string()),
            "size": layer.map_or(0, |l| l.size()),
        }));
    }
    if is_json(format) {
        print_json(&json!(rows))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<22} {:>10}  {:<40} COMMENT",
        "CREATED", "SIZE", "CREATED BY"
    );
    for row in rows.iter().rev() {
        let by = row["createdBy"].as_str().unwrap_or("");
        println!(
            "{:<22} {:>10}  {:<40} {}",
            row["created"].as_str().unwrap_or("-"),
            human_size(row["size"].as_u64().unwrap_or(0)),
            by.chars().take(40).collect::<String>(),
            row["comment"].as_str().unwrap_or(""),
        );
    }
    Ok(ExitCode::SUCCESS)
}
