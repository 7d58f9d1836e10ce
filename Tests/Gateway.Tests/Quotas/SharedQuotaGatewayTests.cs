using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Auth;
using Gateway.Tests.EndToEnd;
using Gateway.Tests.Functional;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using TritonEmulator.Hosting;

namespace Gateway.Tests.Quotas;

/// <summary>Two in-process gateways, one real Redis, one TritonEmulator (zero latency): one quota.</summary>
public sealed class SharedQuotaGatewayTests(RedisServer redis) : IClassFixture<RedisServer>
{
    private const string Key = "sk-test-shared-rpm";

    [Fact]
    public async Task TwoGateways_OneRedis_TogetherAdmitNoMoreThanTheKeysLimit()
    {
        var emulator = EmulatorHost.BuildEmulator("zero-latency");
        await emulator.StartAsync();
        try
        {
            var settings = new Dictionary<string, string?>
            {
                ["Gateway:Quotas:Redis"] = redis.ConnectionString,
                ["Gateway:Quotas:KeyPrefix"] = $"test-{Guid.NewGuid():N}:",
                ["Gateway:ApiKeys:shared:Sha256"] = ApiKeyHash.ToHex(Key),
                ["Gateway:ApiKeys:shared:Tenant"] = "tenant-shared",
                ["Gateway:ApiKeys:shared:AllowedModels:0"] = "*",
                ["Gateway:ApiKeys:shared:RequestsPerMinute"] = "4",
            };
            var triton = emulator.GetEndpoints().Grpc;
            await using var first = await GatewayHost.StartAsync(triton, settings);
            await using var second = await GatewayHost.StartAsync(triton, settings);

            async Task<HttpStatusCode> CompleteAsync(GatewayHost gateway)
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
                {
                    Content = new StringContent("""{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""", Encoding.UTF8, "application/json"),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Key);
                using var response = await gateway.Http.SendAsync(request);
                return response.StatusCode;
            }

            var statuses = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => CompleteAsync(i % 2 == 0 ? first : second)));
            Assert.Equal(4, statuses.Count(s => s == HttpStatusCode.OK));
            Assert.Equal(6, statuses.Count(s => s == HttpStatusCode.TooManyRequests));

            // Each gateway alone would admit 4 per minute; together they are already over the shared limit.
            Assert.Equal(HttpStatusCode.TooManyRequests, await CompleteAsync(first));
            Assert.Equal(HttpStatusCode.TooManyRequests, await CompleteAsync(second));
            // The unlimited key is unaffected.
            using var other = await first.Http.PostAsync("/v1/completions",
                new StringContent("""{"model":"gpt-j-6b","prompt":"Hello","max_tokens":4}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        }
        finally
        {
            await emulator.StopAsync(new CancellationToken(canceled: true));
            await emulator.DisposeAsync();
        }
    }
}
