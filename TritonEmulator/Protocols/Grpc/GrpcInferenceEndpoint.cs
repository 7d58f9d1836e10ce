using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Routing;
using Triton.Inference;

namespace TritonEmulator.Protocols.Grpc;

/// <summary>
/// What <c>MapGrpcService</c> maps for Triton's <c>inference.GRPCInferenceService</c>: the methods
/// the generated code binds, served by the one <see cref="GrpcInferenceService"/>, except that the
/// per-token responses (<c>ModelStreamInfer</c>, <c>ModelInfer</c>) are encoded by
/// <see cref="InferResponseWire"/> instead of the generated marshaller. The generated base class
/// fixes its marshallers, so the service is bound here rather than through its attribute.
/// </summary>
internal sealed class GrpcInferenceEndpoint;

internal sealed class GrpcInferenceMethodProvider(GrpcInferenceService service) : IServiceMethodProvider<GrpcInferenceEndpoint>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<GrpcInferenceEndpoint> context) =>
        GRPCInferenceService.BindService(new Binder(context), service);

    private sealed class Binder(ServiceMethodProviderContext<GrpcInferenceEndpoint> context) : ServiceBinderBase
    {
        // What grpc-dotnet's own binder adds to every method: POST only (CORS preflight accepted).
        private static readonly object[] Metadata = [new HttpMethodMetadata(["POST"], acceptCorsPreflight: true)];

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(handler);
            context.AddUnaryMethod(WithWire(method), Metadata, (_, request, call) => handler(request, call));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(handler);
            context.AddClientStreamingMethod(WithWire(method), Metadata, (_, requests, call) => handler(requests, call));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(handler);
            context.AddServerStreamingMethod(WithWire(method), Metadata, (_, request, responses, call) => handler(request, responses, call));
        }

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
        {
            ArgumentNullException.ThrowIfNull(handler);
            context.AddDuplexStreamingMethod(WithWire(method), Metadata, (_, requests, responses, call) => handler(requests, responses, call));
        }

        private static Method<TRequest, TResponse> WithWire<TRequest, TResponse>(Method<TRequest, TResponse> method)
            where TRequest : class
            where TResponse : class => method switch
            {
                Method<ModelInferRequest, ModelStreamInferResponse> stream => (Method<TRequest, TResponse>)(object)new Method<ModelInferRequest, ModelStreamInferResponse>(
                    stream.Type, stream.ServiceName, stream.Name, stream.RequestMarshaller, InferResponseWire.StreamMarshaller),
                Method<ModelInferRequest, ModelInferResponse> infer => (Method<TRequest, TResponse>)(object)new Method<ModelInferRequest, ModelInferResponse>(
                    infer.Type, infer.ServiceName, infer.Name, infer.RequestMarshaller, InferResponseWire.InferMarshaller),
                _ => method,
            };
    }
}
