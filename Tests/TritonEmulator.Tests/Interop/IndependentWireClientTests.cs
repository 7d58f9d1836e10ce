using System.Buffers.Binary;
using System.Net;
using System.Text;
using TritonEmulator.Tests.Infrastructure;
using TritonEmulator.Tests.Repository;

namespace TritonEmulator.Tests.Interop;

/// <summary>
/// A gRPC client written only from the reference wire facts (triton-contract.md §1.4–1.7, §3),
/// not from this project's protos or generated code: HTTP/2 with prior knowledge, gRPC
/// length-prefixed framing and hand-encoded protobuf fields. If the emulator drifted from Triton's
/// field numbers, wire types, method path or FT semantics, this client would notice.
/// </summary>
public sealed class IndependentWireClientTests
{
    private const string ModelStreamInferPath = "/inference.GRPCInferenceService/ModelStreamInfer";

    [Fact]
    public async Task ModelStreamInfer_FtTensors_CumulativeOutputIdsEndingWithFinalResponse()
    {
        await using var emulator = await TestEmulator.StartAsync([], profile: "zero-latency", repository: RepositoryPaths.ModelsFolder);
        uint[] prompt = [464, 2068, 7586, 21831, 318]; // "The quick brown fox is"
        const uint outputLength = 8;

        var request = EncodeModelInferRequest("fastertransformer", "wire-1", prompt, outputLength);
        using var http = new HttpClient();
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(emulator.Endpoints.Grpc, ModelStreamInferPath))
        {
            // h2c with prior knowledge, as gRPC clients talk to Triton's plaintext port.
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(Frame(request)),
        };
        message.Content.Headers.TryAddWithoutValidation("Content-Type", "application/grpc");
        message.Headers.TryAddWithoutValidation("TE", "trailers");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var body = await response.Content.ReadAsByteArrayAsync(cts.Token);

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode} {response.Version} {response.Headers} {Encoding.UTF8.GetString(body)}");
        Assert.Equal("0", response.TrailingHeaders.TryGetValues("grpc-status", out var status) ? status.Single() : "missing");
        var responses = Unframe(body).Select(DecodeStreamResponse).ToList();
        Assert.All(responses, r => Assert.Equal("", r.Error));
        Assert.All(responses, r => Assert.Equal("wire-1", r.Id));
        var withTokens = responses.Where(r => r.OutputIds is not null).ToList();
        Assert.Equal((int)outputLength, withTokens.Count);
        for (var i = 0; i < withTokens.Count; i++)
        {
            // Cumulative: prompt + every token so far; sequence_length grows by exactly one per response.
            Assert.Equal(prompt.Length + i + 1, withTokens[i].SequenceLength);
            Assert.Equal(prompt, withTokens[i].OutputIds![..prompt.Length]);
            if (i > 0)
            {
                Assert.Equal(withTokens[i - 1].OutputIds!, withTokens[i].OutputIds![..^1]);
            }
        }
        Assert.All(responses, r => Assert.NotNull(r.Final));
        Assert.True(responses[^1].Final);
        Assert.All(responses[..^1], r => Assert.False(r.Final));
    }

    [Fact]
    public async Task ModelStreamInfer_TensorRtLlmEnsemble_StreamsTextDeltasEndingWithFinalResponse()
    {
        await using var emulator = await TestEmulator.StartAsync([], profile: "zero-latency", repository: RepositoryPaths.TrtLlmModelsFolder);
        const string prompt = "The weather today is";

        // Two requests on one stream, as TensorRT-LLM's sample clients send them: streamed and whole.
        var body = Frame(EncodeEnsembleRequest("stream-1", prompt, maxTokens: 10, stream: true))
            .Concat(Frame(EncodeEnsembleRequest("whole-1", prompt, maxTokens: 10, stream: false))).ToArray();
        using var http = new HttpClient();
        using var message = new HttpRequestMessage(HttpMethod.Post, new Uri(emulator.Endpoints.Grpc, ModelStreamInferPath))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        message.Content.Headers.TryAddWithoutValidation("Content-Type", "application/grpc");
        message.Headers.TryAddWithoutValidation("TE", "trailers");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var received = await response.Content.ReadAsByteArrayAsync(cts.Token);

        Assert.Equal("0", response.TrailingHeaders.TryGetValues("grpc-status", out var status) ? status.Single() : "missing");
        var responses = Unframe(received).Select(DecodeStreamResponse).ToList();
        Assert.All(responses, r => Assert.Equal("", r.Error));
        var streamed = responses.Where(static r => r.Id == "stream-1").ToList();
        var whole = Assert.Single(responses, static r => r.Id == "whole-1");
        Assert.True(streamed.Count > 3, $"expected one response per token, got {streamed.Count}");
        Assert.All(streamed[..^1], r => Assert.False(r.Final));
        Assert.True(streamed[^1].Final);
        Assert.True(whole.Final);
        Assert.All(streamed.Where(static r => r.TextOutput is not null), r => Assert.True(r.TextOutput!.Length < whole.TextOutput!.Length));
        Assert.False(string.IsNullOrEmpty(whole.TextOutput));
        Assert.Equal(whole.TextOutput, string.Concat(streamed.Select(static r => r.TextOutput)));
    }

    private static byte[] EncodeEnsembleRequest(string id, string prompt, int maxTokens, bool stream)
    {
        var text = Encoding.UTF8.GetBytes(prompt);
        var bytesElement = new byte[4 + text.Length]; // BYTES: 4-byte little-endian length, then the bytes
        BinaryPrimitives.WriteUInt32LittleEndian(bytesElement, (uint)text.Length);
        text.CopyTo(bytesElement, 4);
        var maxTokensRaw = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(maxTokensRaw, maxTokens);
        var w = new ProtoWriter();
        w.String(1, "ensemble");
        w.String(3, id);
        w.Message(5, Input("text_input", "BYTES", [1, 1]));
        w.Message(5, Input("max_tokens", "INT32", [1, 1]));
        w.Message(5, Input("stream", "BOOL", [1, 1]));
        w.Bytes(7, bytesElement);
        w.Bytes(7, maxTokensRaw);
        w.Bytes(7, [stream ? (byte)1 : (byte)0]);
        return w.ToArray();
    }

    // --- ModelInferRequest (fields: model_name=1, id=3, parameters=4, inputs=5, raw_input_contents=7) ---

    private static byte[] EncodeModelInferRequest(string model, string id, uint[] prompt, uint outputLength)
    {
        var w = new ProtoWriter();
        w.String(1, model);
        w.String(3, id);
        w.Message(4, MapEntry("triton_enable_empty_final_response", boolParam: false));
        w.Message(5, Input("input_ids", "UINT32", [1, prompt.Length]));
        w.Message(5, Input("input_lengths", "UINT32", [1, 1]));
        w.Message(5, Input("request_output_len", "UINT32", [1, 1]));
        w.Bytes(7, UInt32LittleEndian(prompt));
        w.Bytes(7, UInt32LittleEndian([(uint)prompt.Length]));
        w.Bytes(7, UInt32LittleEndian([outputLength]));
        return w.ToArray();
    }

    private static byte[] MapEntry(string key, bool boolParam)
    {
        var parameter = new ProtoWriter();
        parameter.Varint(1, boolParam ? 1UL : 0UL); // InferParameter.bool_param = 1
        var entry = new ProtoWriter();
        entry.String(1, key);
        entry.Message(2, parameter.ToArray());
        return entry.ToArray();
    }

    private static byte[] Input(string name, string datatype, long[] shape)
    {
        var w = new ProtoWriter();
        w.String(1, name);
        w.String(2, datatype);
        var packed = new ProtoWriter();
        foreach (var dim in shape)
        {
            packed.RawVarint((ulong)dim);
        }
        w.Bytes(3, packed.ToArray()); // repeated int64 shape, packed
        return w.ToArray();
    }

    private static byte[] UInt32LittleEndian(uint[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(i * 4), values[i]);
        }
        return bytes;
    }

    // --- ModelStreamInferResponse (error_message=1, infer_response=2) ---

    private sealed record StreamResponse(string Error, string Id, bool? Final, uint[]? OutputIds, int SequenceLength, string? TextOutput = null);

    private static StreamResponse DecodeStreamResponse(byte[] message)
    {
        var error = "";
        byte[] infer = [];
        foreach (var (field, _, value) in ProtoReader.Fields(message))
        {
            if (field == 1) error = Encoding.UTF8.GetString(value);
            if (field == 2) infer = value;
        }

        // ModelInferResponse: id=3, parameters=4 (map entry), outputs=5, raw_output_contents=6.
        var id = "";
        bool? final = null;
        var outputs = new List<(string Name, string Datatype)>();
        var raws = new List<byte[]>();
        foreach (var (field, _, value) in ProtoReader.Fields(infer))
        {
            switch (field)
            {
                case 3:
                    id = Encoding.UTF8.GetString(value);
                    break;
                case 4:
                    string? key = null;
                    bool? flag = null;
                    foreach (var (entryField, _, entryValue) in ProtoReader.Fields(value))
                    {
                        if (entryField == 1) key = Encoding.UTF8.GetString(entryValue);
                        if (entryField == 2)
                        {
                            foreach (var (paramField, varint, _) in ProtoReader.Fields(entryValue))
                            {
                                if (paramField == 1) flag = varint != 0; // bool_param
                            }
                            flag ??= false; // proto3: false is not written
                        }
                    }
                    if (key == "triton_final_response") final = flag ?? false;
                    break;
                case 5:
                    string name = "", datatype = "";
                    foreach (var (tensorField, _, tensorValue) in ProtoReader.Fields(value))
                    {
                        if (tensorField == 1) name = Encoding.UTF8.GetString(tensorValue);
                        if (tensorField == 2) datatype = Encoding.UTF8.GetString(tensorValue);
                    }
                    outputs.Add((name, datatype));
                    break;
                case 6:
                    raws.Add(value);
                    break;
            }
        }

        Assert.Equal(outputs.Count, raws.Count);
        uint[]? outputIds = null;
        string? textOutput = null;
        var sequenceLength = 0;
        for (var i = 0; i < outputs.Count; i++)
        {
            if (outputs[i].Name == "text_output")
            {
                Assert.Equal("BYTES", outputs[i].Datatype);
                var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(raws[i]);
                textOutput = Encoding.UTF8.GetString(raws[i], 4, length);
            }
            if (outputs[i].Name == "output_ids")
            {
                Assert.Equal("UINT32", outputs[i].Datatype);
                outputIds = new uint[raws[i].Length / 4];
                for (var j = 0; j < outputIds.Length; j++)
                {
                    outputIds[j] = BinaryPrimitives.ReadUInt32LittleEndian(raws[i].AsSpan(j * 4));
                }
            }
            if (outputs[i].Name == "sequence_length")
            {
                sequenceLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(raws[i]);
            }
        }
        // Only the first sequence_length ids of a row are valid (the sample client slices them).
        if (outputIds is not null)
        {
            outputIds = outputIds[..sequenceLength];
        }
        return new StreamResponse(error, id, final, outputIds, sequenceLength, textOutput);
    }

    // --- gRPC framing: 1 byte compressed flag, 4 bytes big-endian length, message ---

    private static byte[] Frame(byte[] message)
    {
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame, 5);
        return frame;
    }

    private static IEnumerable<byte[]> Unframe(byte[] body)
    {
        var offset = 0;
        while (offset < body.Length)
        {
            Assert.Equal(0, body[offset]); // not compressed
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(offset + 1));
            yield return body.AsSpan(offset + 5, length).ToArray();
            offset += 5 + length;
        }
    }

    private sealed class ProtoWriter
    {
        private readonly MemoryStream _buffer = new();

        public void RawVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _buffer.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            _buffer.WriteByte((byte)value);
        }

        public void Varint(int field, ulong value)
        {
            RawVarint((ulong)(field << 3)); // wire type 0
            RawVarint(value);
        }

        public void Bytes(int field, byte[] value)
        {
            RawVarint((ulong)((field << 3) | 2)); // wire type 2: length-delimited
            RawVarint((ulong)value.Length);
            _buffer.Write(value);
        }

        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public void Message(int field, byte[] value) => Bytes(field, value);

        public byte[] ToArray() => _buffer.ToArray();
    }

    private static class ProtoReader
    {
        /// <summary>Every field: number, varint value (wire type 0) and bytes (wire type 2).</summary>
        public static IEnumerable<(int Field, ulong Varint, byte[] Bytes)> Fields(byte[] message)
        {
            var offset = 0;
            while (offset < message.Length)
            {
                var tag = ReadVarint(message, ref offset);
                var field = (int)(tag >> 3);
                switch (tag & 7)
                {
                    case 0:
                        yield return (field, ReadVarint(message, ref offset), []);
                        break;
                    case 2:
                        var length = (int)ReadVarint(message, ref offset);
                        yield return (field, 0, message.AsSpan(offset, length).ToArray());
                        offset += length;
                        break;
                    case 1:
                        offset += 8;
                        break;
                    case 5:
                        offset += 4;
                        break;
                    default:
                        throw new InvalidDataException($"wire type {tag & 7} of field {field}");
                }
            }
        }

        private static ulong ReadVarint(byte[] data, ref int offset)
        {
            ulong value = 0;
            for (var shift = 0; ; shift += 7)
            {
                var b = data[offset++];
                value |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }
        }
    }
}
