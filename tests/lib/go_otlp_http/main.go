// Command go_otlp_http sends spans made by the OpenTelemetry Go SDK to an
// OTLP/HTTP endpoint over TLS, on the HTTP transport the SDK's otlptracehttp
// exporter uses: a clone of net/http's default transport (ForceAttemptHTTP2)
// with the test's CA and client certificate, so HTTP/2 is negotiated by ALPN
// when the server offers it. Debian packages the Go SDK but not its OTLP
// exporters, so the spans are written as OTLP/JSON here.
//
// Used by tests/system/test_http2.py. One line of JSON per export on stdout:
// {"proto": "HTTP/2.0", "status": 200}; exit status 1 when an export failed.
//
//	go_otlp_http -url https://localhost:4318/v1/traces -ca ca.pem \
//	    [-cert client.pem -key client.key] [-token T] [-traces 3] [-children 4]
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

type exporter struct {
	url, token string
	client     *http.Client
	failed     bool
}

func anyValue(v attribute.Value) map[string]interface{} {
	switch v.Type() {
	case attribute.BOOL:
		return map[string]interface{}{"boolValue": v.AsBool()}
	case attribute.INT64:
		return map[string]interface{}{"intValue": strconv.FormatInt(v.AsInt64(), 10)}
	case attribute.FLOAT64:
		return map[string]interface{}{"doubleValue": v.AsFloat64()}
	default:
		return map[string]interface{}{"stringValue": v.Emit()}
	}
}

func keyValues(kvs []attribute.KeyValue) []map[string]interface{} {
	out := []map[string]interface{}{}
	for _, kv := range kvs {
		out = append(out, map[string]interface{}{"key": string(kv.Key), "value": anyValue(kv.Value)})
	}
	return out
}

// otlpJSON is one ExportTraceServiceRequest, one resource and scope per span.
func otlpJSON(spans []sdktrace.ReadOnlySpan) ([]byte, error) {
	rs := []map[string]interface{}{}
	for _, s := range spans {
		span := map[string]interface{}{
			"traceId":           s.SpanContext().TraceID().String(),
			"spanId":            s.SpanContext().SpanID().String(),
			"name":              s.Name(),
			"kind":              int(s.SpanKind()),
			"startTimeUnixNano": strconv.FormatInt(s.StartTime().UnixNano(), 10),
			"endTimeUnixNano":   strconv.FormatInt(s.EndTime().UnixNano(), 10),
			"attributes":        keyValues(s.Attributes()),
		}
		if s.Parent().IsValid() {
			span["parentSpanId"] = s.Parent().SpanID().String()
		}
		rs = append(rs, map[string]interface{}{
			"resource": map[string]interface{}{"attributes": keyValues(s.Resource().Attributes())},
			"scopeSpans": []map[string]interface{}{{
				"scope": map[string]interface{}{"name": s.InstrumentationLibrary().Name},
				"spans": []map[string]interface{}{span},
			}},
		})
	}
	return json.Marshal(map[string]interface{}{"resourceSpans": rs})
}

func (e *exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	body, err := otlpJSON(spans)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.failed = true
		fmt.Printf("{\"error\": %q}\n", err.Error())
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Printf("{\"proto\": %q, \"status\": %d}\n", resp.Proto, resp.StatusCode)
	if resp.StatusCode != http.StatusOK {
		e.failed = true
	}
	return nil
}

func (e *exporter) Shutdown(ctx context.Context) error { return nil }

func main() {
	url := flag.String("url", "", "OTLP/HTTP traces URL")
	caFile := flag.String("ca", "", "CA certificate the server's is signed by")
	certFile := flag.String("cert", "", "client certificate (mutual TLS)")
	keyFile := flag.String("key", "", "client key")
	token := flag.String("token", "", "bearer token")
	traces := flag.Int("traces", 3, "traces to send, one export each")
	children := flag.Int("children", 4, "LLM child spans per trace")
	flag.Parse()

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(*caFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "cannot read the CA certificate", *caFile)
		os.Exit(2)
	}
	cfg := &tls.Config{RootCAs: pool}
	if *certFile != "" {
		pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone() // as otlptracehttp
	transport.TLSClientConfig = cfg
	exp := &exporter{url: *url, token: *token, client: &http.Client{Transport: transport}}

	rec := &collect{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(rec)))
	tracer := tp.Tracer("go-h2-test")
	for t := 0; t < *traces; t++ {
		ctx, root := tracer.Start(context.Background(), fmt.Sprintf("go-workflow-%d", t))
		root.SetAttributes(attribute.String("respan.customer_params.customer_identifier", "go-customer"))
		for c := 0; c < *children; c++ {
			_, child := tracer.Start(ctx, fmt.Sprintf("go-llm-%d-%d", t, c))
			child.SetAttributes(attribute.String("gen_ai.request.model", "gpt-4o-mini"),
				attribute.Int("gen_ai.usage.input_tokens", 100+c),
				attribute.Int("gen_ai.usage.output_tokens", 10+c))
			child.End()
		}
		root.End()
		if err := exp.ExportSpans(context.Background(), rec.spans); err != nil {
			fmt.Fprintln(os.Stderr, "export:", err)
		}
		rec.spans = nil
	}
	tp.Shutdown(context.Background())
	if exp.failed {
		os.Exit(1)
	}
}

// collect keeps the spans as they end; each trace is then one export.
type collect struct{ spans []sdktrace.ReadOnlySpan }

func (c *collect) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	c.spans = append(c.spans, spans...)
	return nil
}

func (c *collect) Shutdown(ctx context.Context) error { return nil }
