"""Writes the fuzz targets' seed inputs from the real peers (run once, output committed).

    /work/peers-venv/bin/python crates/xray-bridge/fuzz/make_seeds.py   # or target/peers-venv

- `crates/xray-model/fuzz/seeds/datagram/python-sdk-*`: the daemon datagrams aws-xray-sdk
  (Python) sends for a segment with HTTP data, an annotation, metadata and a subsegment
  with an exception, caught on a loopback UDP socket;
- `crates/xray-model/fuzz/seeds/header/python-sdk`: the X-Amzn-Trace-Id of that segment;
- `crates/xray-bridge/fuzz/seeds/otlp_json/python-sdk.json`: spans of the OpenTelemetry
  Python SDK (server, client, producer; attributes of every type, an exception event, a
  link, an error status) encoded by its OTLP exporter's encoder and written as OTLP/JSON
  (integer enums, hex ids, as the OTLP specification requires);
- `crates/xray-bridge/fuzz/seeds/otlp_protobuf/python-sdk.pb`: the same kind of spans as
  the protobuf body the exporter sends (`otel_request().SerializeToString()`).
"""

import base64
import json
import os
import socket
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
MODEL = os.path.join(ROOT, "crates", "xray-model", "fuzz", "seeds")
BRIDGE = os.path.join(ROOT, "crates", "xray-bridge", "fuzz", "seeds")


def xray_sdk_seeds():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    address = "127.0.0.1:%d" % sock.getsockname()[1]
    from aws_xray_sdk.core import xray_recorder

    xray_recorder.configure(
        daemon_address=address, context_missing="LOG_ERROR", sampling=False, streaming_threshold=1
    )
    segment = xray_recorder.begin_segment("orders-api")
    segment.put_http_meta("method", "POST")
    segment.put_http_meta("url", "https://example.com/orders")
    segment.put_annotation("tier", "gold")
    segment.put_metadata("cart", {"items": [1, 2, 3], "total": 12.5}, "shop")
    sub = xray_recorder.begin_subsegment("DynamoDB", "aws")
    sub.put_http_meta("status", 200)
    try:
        raise KeyError("missing")
    except KeyError as e:
        sub.add_exception(e, traceback.extract_stack())
    xray_recorder.end_subsegment()
    header = "Root=%s;Parent=%s;Sampled=1" % (segment.trace_id, segment.id)
    xray_recorder.end_segment()
    n = 0
    while True:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            break
        with open(os.path.join(MODEL, "datagram", "python-sdk-%d" % n), "wb") as f:
            f.write(data)
        n += 1
        sock.settimeout(0.5)
    with open(os.path.join(MODEL, "header", "python-sdk"), "w") as f:
        f.write(header)


def otel_request():
    """An `ExportTraceServiceRequest` of the Python SDK's spans, as its exporter encodes it."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": "checkout", "cloud.provider": "aws", "cloud.platform": "aws_ec2"}
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("seed.generator", "1.0")
    server = {"http.request.method": "GET", "url.path": "/orders/42", "http.route": "/orders/{id}"}
    with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER, attributes=server) as root:
        root.set_attribute("http.response.status_code", 500)
        dynamo = {"rpc.system": "aws-api", "rpc.service": "DynamoDB", "rpc.method": "GetItem",
                  "aws.dynamodb.table_names": ["orders"], "aws.request_id": "ABC123"}
        with tracer.start_as_current_span("DynamoDB.GetItem", kind=SpanKind.CLIENT, attributes=dynamo):
            pass
        sql = {"db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = $1",
               "server.address": "db.local", "retries": 3, "ratio": 0.25, "flag": True}
        with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, attributes=sql) as span:
            try:
                raise ValueError("boom")
            except ValueError as e:
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, "boom"))
        link = Link(root.get_span_context(), {"kind": "follows"})
        with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER, links=[link]):
            pass
        root.add_event("cache miss", {"key": "orders:42"})
    provider.force_flush()
    return encode_spans(exporter.get_finished_spans())


def otel_seed():
    from google.protobuf.json_format import MessageToDict

    request = otel_request()
    with open(os.path.join(BRIDGE, "otlp_protobuf", "python-sdk.pb"), "wb") as f:
        f.write(request.SerializeToString())
    body = MessageToDict(request, use_integers_for_enums=True)

    def hex_ids(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    value[k] = base64.b64decode(v).hex()
                else:
                    hex_ids(v)
        elif isinstance(value, list):
            for v in value:
                hex_ids(v)

    hex_ids(body)
    with open(os.path.join(BRIDGE, "otlp_json", "python-sdk.json"), "w") as f:
        f.write(json.dumps(body, separators=(",", ":")))


if __name__ == "__main__":
    xray_sdk_seeds()
    otel_seed()
