// bench_otlp_receiver.cc — decode throughput of the otlp receiver's request path:
// protobuf (or JSON) bytes → unpacked message → registry ids → points in a sink, the
// work the receiver thread does per request minus the socket. Requests carry one gauge
// with N points over N series with two attributes each; after the first iteration every
// series is known, which is the steady state of a real sender. items_per_second is data
// points per second on one core.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <zlib.h>

// protoc-c's service stubs name a parameter `export`, a C++ keyword.
#define export export_
extern "C" {
#include "../src/receivers/otlp/otlp_int.h"
#include "dbi/otlp_json.h"
#include "dbi/otlp_pb.h"
}
#undef export

namespace
{

struct Sink {
	uint64_t points = 0;
	uint64_t checksum = 0;
};

int sink_point(void *cls, struct dbi_point *p, uint64_t route)
{
	auto *s = static_cast<Sink *>(cls);
	s->points++;
	s->checksum += p->series ^ route;
	return DBI_OK;
}

void *sink_reserve(void *, uint32_t, uint32_t, uint64_t)
{
	return nullptr;
}

void sink_commit(void *, void *)
{
}

std::string request_json(int n)
{
	std::string j = "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
	                "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"bench\"}},"
	                "{\"key\":\"host.name\",\"value\":{\"stringValue\":\"bench-host-01\"}}]},"
	                "\"scopeMetrics\":[{\"scope\":{\"name\":\"bench\"},\"metrics\":[{\"name\":\"bench.gauge\","
	                "\"unit\":\"1\",\"gauge\":{\"dataPoints\":[";
	for (int i = 0; i < n; i++) {
		char p[256];
		snprintf(p, sizeof(p),
		         "%s{\"asDouble\":%d.5,\"timeUnixNano\":\"1700000000000000000\",\"attributes\":["
		         "{\"key\":\"series\",\"value\":{\"intValue\":\"%d\"}},"
		         "{\"key\":\"db\",\"value\":{\"stringValue\":\"db%d\"}}]}",
		         i ? "," : "", i, i, i % 16);
		j += p;
	}
	return j + "]}}]}]}]}";
}

std::vector<uint8_t> request_pb(int n)
{
	std::string j = request_json(n);
	ProtobufCMessage *m = nullptr;
	if (dbi_otlp_json_decode(otlp_request_desc(OTLP_METRICS), j.data(), j.size(), &m, nullptr) != DBI_OK)
		abort();
	std::vector<uint8_t> out(protobuf_c_message_get_packed_size(m));
	protobuf_c_message_pack(m, out.data());
	protobuf_c_message_free_unpacked(m, nullptr);
	return out;
}

std::vector<uint8_t> gzip(const std::vector<uint8_t> &in)
{
	std::vector<uint8_t> out(in.size() + 1024);
	z_stream z = {};
	deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	z.next_in = const_cast<uint8_t *>(in.data());
	z.avail_in = static_cast<uInt>(in.size());
	z.next_out = out.data();
	z.avail_out = static_cast<uInt>(out.size());
	deflate(&z, Z_FINISH);
	out.resize(z.total_out);
	deflateEnd(&z);
	return out;
}

// mode 0: protobuf, 1: gzip protobuf, 2: JSON
void run(benchmark::State &state, int mode)
{
	const int n = static_cast<int>(state.range(0));
	struct dbi_registry *reg = dbi_registry_create(10000000);
	struct otlp_dec *dec = otlp_dec_create(reg);
	Sink sink;
	struct otlp_sink s = {&sink, sink_point, sink_reserve, sink_commit, 1u << 20};
	std::vector<uint8_t> body;
	if (mode == 2) {
		std::string j = request_json(n);
		body.assign(j.begin(), j.end());
	} else {
		body = request_pb(n);
		if (mode == 1)
			body = gzip(body);
	}
	struct otlp_result res;
	struct dbi_errbuf err;
	char why[256];
	for (auto _ : state) {
		uint8_t *plain = nullptr;
		size_t plain_len = 0;
		ProtobufCMessage *m = nullptr;
		if (otlp_decompress(mode == 1 ? OTLP_ENC_GZIP : OTLP_ENC_IDENTITY, body.data(), body.size(), 64u << 20,
		                    0, &plain, &plain_len, why, sizeof(why)) != OTLP_BODY_OK ||
		    otlp_unpack(OTLP_METRICS, mode == 2, plain, plain_len, &m, &err) != DBI_OK) {
			state.SkipWithError("decode failed");
			break;
		}
		otlp_emit(dec, OTLP_METRICS, m, &s, &res);
		protobuf_c_message_free_unpacked(m, nullptr);
		free(plain);
		if (res.accepted != static_cast<uint64_t>(n)) {
			state.SkipWithError("points dropped");
			break;
		}
	}
	benchmark::DoNotOptimize(sink.checksum);
	state.SetItemsProcessed(static_cast<int64_t>(sink.points));
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
	otlp_dec_destroy(dec);
	dbi_registry_destroy(reg);
}

void BM_OtlpDecodeProtobuf(benchmark::State &state)
{
	run(state, 0);
}
void BM_OtlpDecodeProtobufGzip(benchmark::State &state)
{
	run(state, 1);
}
void BM_OtlpDecodeJson(benchmark::State &state)
{
	run(state, 2);
}

} // namespace

BENCHMARK(BM_OtlpDecodeProtobuf)->Arg(100)->Arg(1000)->Arg(10000);
BENCHMARK(BM_OtlpDecodeProtobufGzip)->Arg(1000);
BENCHMARK(BM_OtlpDecodeJson)->Arg(1000);
BENCHMARK_MAIN();
