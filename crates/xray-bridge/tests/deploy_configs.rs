//! The files in `collector-config/` parse, and every flag, key and port they use exists in
//! the binary: each command line is run through `xray-bridge --check-config`, and the ports
//! the manifests open are the ports the bridge then listens on.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use xray_bridge::config::{Cli, Settings};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../collector-config"
    ))
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn yaml_docs(file: &str) -> Vec<Yaml> {
    serde_yaml_ng::Deserializer::from_str(&read(file))
        .map(|d| Yaml::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

/// Runs the real binary with `--check-config` and `args`, and merges them the same way.
fn check(what: &str, args: &[String]) -> Settings {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-bridge"));
    for (k, _) in std::env::vars() {
        if k.starts_with("XRAY_BRIDGE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.arg("--check-config").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{what}: xray-bridge --check-config {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli = Cli::try_parse_from(std::iter::once("xray-bridge".to_owned()).chain(args.to_vec()))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    Settings::resolve(cli).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// (protocol, port) of every listener.
fn listening(s: &Settings) -> BTreeSet<(&'static str, u16)> {
    let mut out = BTreeSet::new();
    for (proto, addr) in [
        ("udp", s.udp.addr()),
        ("tcp", s.tcp.addr()),
        ("tcp", s.otlp_grpc.addr()),
        ("tcp", s.otlp_http.addr()),
        ("tcp", s.metrics.addr()),
    ] {
        if let Some(a) = addr {
            assert!(
                a.ip().is_unspecified(),
                "a container listens on all interfaces: {a}"
            );
            out.insert((proto, a.port()));
        }
    }
    out
}

fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn collector_configs_point_at_the_bridge_otlp_port() {
    let path = dir().join("xray-bridge.toml");
    let bridge = check(
        "xray-bridge.toml",
        &["--config".to_owned(), path.display().to_string()],
    );
    let grpc = bridge.otlp_grpc.addr().expect("otlp-grpc on").port();
    for file in [
        "otel-collector-to-xray-bridge.yaml",
        "otel-collector-side-by-side.yaml",
    ] {
        let doc = &yaml_docs(file)[0];
        let exporter = &doc["exporters"]["otlp/xray-bridge"];
        let endpoint = exporter["endpoint"].as_str().expect("endpoint");
        assert_eq!(endpoint, format!("xray-bridge:{grpc}"), "{file}");
        assert_eq!(exporter["tls"]["insecure"], Yaml::Bool(true), "{file}");
        let pipeline = &doc["service"]["pipelines"]["traces"];
        let exporters: Vec<&str> = pipeline["exporters"]
            .as_sequence()
            .expect("exporters")
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(exporters.contains(&"otlp/xray-bridge"), "{file}");
        for e in &exporters {
            assert!(
                doc["exporters"][*e].is_mapping(),
                "{file}: exporter {e} is not defined"
            );
        }
        if file.contains("side-by-side") {
            assert!(exporters.contains(&"awsxray"), "{file}");
            assert!(doc["exporters"]["awsxray"]["region"].is_string());
        }
        assert!(doc["receivers"]["otlp"]["protocols"]["grpc"].is_mapping());
    }
}

#[test]
fn ecs_sidecar_flags_and_ports_exist() {
    let task: Json = serde_json::from_str(&read("ecs-task-definition.json")).unwrap();
    let containers = task["containerDefinitions"].as_array().unwrap();
    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "xray-bridge")
        .expect("sidecar");
    let settings = check("ECS sidecar", &strings(&sidecar["command"]));
    let listeners = listening(&settings);
    let mapped: BTreeSet<(&str, u16)> = sidecar["portMappings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let proto = if p["protocol"] == "udp" { "udp" } else { "tcp" };
            (proto, p["containerPort"].as_u64().unwrap() as u16)
        })
        .collect();
    assert_eq!(mapped, listeners);
    assert!(mapped.contains(&("udp", 2000)));
    // The app sends its segments to the sidecar's UDP port.
    let app = containers
        .iter()
        .find(|c| c["name"] != "xray-bridge")
        .unwrap();
    let daemon = app["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "AWS_XRAY_DAEMON_ADDRESS")
        .expect("AWS_XRAY_DAEMON_ADDRESS");
    assert_eq!(daemon["value"], "127.0.0.1:2000");
    let health = strings(&sidecar["healthCheck"]["command"]);
    assert_eq!(health[1], "/xray-bridge");
    let out = Command::new(env!("CARGO_BIN_EXE_xray-bridge"))
        .args(&health[2..])
        .output()
        .unwrap();
    assert!(out.status.success(), "health check command {health:?}");
}

#[test]
fn eks_daemonset_flags_ports_and_policy() {
    let docs = yaml_docs("eks-daemonset.yaml");
    let account = docs
        .iter()
        .find(|d| d["kind"] == "ServiceAccount")
        .expect("ServiceAccount");
    let set = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("DaemonSet");
    let spec = &set["spec"]["template"]["spec"];
    assert_eq!(spec["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(
        set["metadata"]["namespace"],
        account["metadata"]["namespace"]
    );
    assert!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:iam::"))
    );
    let container = &spec["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let settings = check("EKS DaemonSet", &args);
    let ports: BTreeSet<(&str, u16)> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            let proto = if p["protocol"] == "UDP" { "udp" } else { "tcp" };
            (proto, p["containerPort"].as_u64().unwrap() as u16)
        })
        .collect();
    assert_eq!(ports, listening(&settings));
    let metrics = settings.metrics.addr().expect("metrics on").port();
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["port"].as_u64(),
            Some(metrics.into())
        );
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz");
    }

    let eksctl = &yaml_docs("eks-iam-service-account.yaml")[0];
    let sa = &eksctl["iam"]["serviceAccounts"][0];
    assert_eq!(sa["metadata"]["name"], account["metadata"]["name"]);
    assert_eq!(
        sa["metadata"]["namespace"],
        account["metadata"]["namespace"]
    );
    assert_eq!(
        sa["attachPolicyARNs"][0],
        "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
    );
}

#[test]
fn dockerfile_builds_the_binary_and_its_command_and_ports_exist() {
    let text = read("Dockerfile");
    let instruction = |name: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .collect()
    };
    assert!(text.contains("cargo build --release --locked -p xray-bridge --bin xray-bridge"));
    let entry: Vec<String> = serde_json::from_str(instruction("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entry[0], "/xray-bridge");
    let cmd: Vec<String> = serde_json::from_str(instruction("CMD")[0]).unwrap();
    let args: Vec<String> = entry[1..].iter().chain(&cmd).cloned().collect();
    let settings = check("Dockerfile ENTRYPOINT and CMD", &args);
    // A task definition or DaemonSet written for the X-Ray daemon passes the daemon's
    // flags as the command: with only the image swapped, they add to the entrypoint and
    // the bridge still listens where the daemon's image did.
    let daemon_command = ["-o", "-n", "us-east-1", "-l", "prod"].map(String::from);
    let swapped: Vec<String> = entry[1..].iter().chain(&daemon_command).cloned().collect();
    let swapped = check("the daemon's command on this image", &swapped);
    assert!(listening(&swapped).contains(&("udp", 2000)));
    assert!(listening(&swapped).contains(&("tcp", 2000)));
    assert!(swapped.local_mode);
    assert_eq!(swapped.region.as_deref(), Some("us-east-1"));
    let exposed: BTreeSet<(&str, u16)> = instruction("EXPOSE")[0]
        .split_whitespace()
        .map(|p| {
            let (port, proto) = p.split_once('/').unwrap();
            (
                if proto == "udp" { "udp" } else { "tcp" },
                port.parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(exposed, listening(&settings));
    assert_eq!(instruction("FROM").len(), 2, "multi-stage build");
    assert!(instruction("FROM")[1].contains("distroless"));
}
