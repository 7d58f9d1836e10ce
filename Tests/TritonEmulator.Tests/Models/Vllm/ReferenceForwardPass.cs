namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>
/// A plain, independent forward pass of the tiny llama model, written from the architecture
/// (RMSNorm, rotary embeddings on adjacent pairs as llama.cpp's "normal" RoPE, grouped-query causal
/// attention, SwiGLU FFN) in doubles, to check the logits llama.cpp computes.
/// </summary>
internal static class ReferenceForwardPass
{
    /// <summary>Logits for every position: <c>[tokens.Length][Vocab]</c>.</summary>
    public static double[][] Logits(TinyLlama model, IReadOnlyList<int> tokens)
    {
        const int dim = TinyLlama.Dim;
        var n = tokens.Count;
        var x = new double[n][];
        for (var t = 0; t < n; t++)
        {
            x[t] = new double[dim];
            for (var d = 0; d < dim; d++)
            {
                x[t][d] = model.TokenEmbedding[tokens[t] * dim + d];
            }
        }
        foreach (var layer in model.Layer)
        {
            var q = new double[n][];
            var k = new double[n][];
            var v = new double[n][];
            for (var t = 0; t < n; t++)
            {
                var h = RmsNorm(x[t], layer.AttnNorm);
                q[t] = MatVec(layer.Q, h, TinyLlama.Dim);
                k[t] = MatVec(layer.K, h, TinyLlama.KvDim);
                v[t] = MatVec(layer.V, h, TinyLlama.KvDim);
                Rope(q[t], TinyLlama.Heads, t);
                Rope(k[t], TinyLlama.KvHeads, t);
            }
            for (var t = 0; t < n; t++)
            {
                var attention = new double[dim];
                for (var head = 0; head < TinyLlama.Heads; head++)
                {
                    var kvHead = head / (TinyLlama.Heads / TinyLlama.KvHeads);
                    var scores = new double[t + 1];
                    var max = double.NegativeInfinity;
                    for (var s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (var i = 0; i < TinyLlama.HeadDim; i++)
                        {
                            dot += q[t][head * TinyLlama.HeadDim + i] * k[s][kvHead * TinyLlama.HeadDim + i];
                        }
                        scores[s] = dot / Math.Sqrt(TinyLlama.HeadDim);
                        max = Math.Max(max, scores[s]);
                    }
                    double sum = 0;
                    for (var s = 0; s <= t; s++)
                    {
                        scores[s] = Math.Exp(scores[s] - max);
                        sum += scores[s];
                    }
                    for (var s = 0; s <= t; s++)
                    {
                        for (var i = 0; i < TinyLlama.HeadDim; i++)
                        {
                            attention[head * TinyLlama.HeadDim + i] += scores[s] / sum * v[s][kvHead * TinyLlama.HeadDim + i];
                        }
                    }
                }
                var projected = MatVec(layer.O, attention, dim);
                for (var d = 0; d < dim; d++)
                {
                    x[t][d] += projected[d];
                }
            }
            for (var t = 0; t < n; t++)
            {
                var h = RmsNorm(x[t], layer.FfnNorm);
                var gate = MatVec(layer.Gate, h, TinyLlama.Ffn);
                var up = MatVec(layer.Up, h, TinyLlama.Ffn);
                var hidden = new double[TinyLlama.Ffn];
                for (var i = 0; i < hidden.Length; i++)
                {
                    hidden[i] = gate[i] / (1 + Math.Exp(-gate[i])) * up[i];
                }
                var down = MatVec(layer.Down, hidden, dim);
                for (var d = 0; d < dim; d++)
                {
                    x[t][d] += down[d];
                }
            }
        }
        var logits = new double[n][];
        for (var t = 0; t < n; t++)
        {
            logits[t] = MatVec(model.Output, RmsNorm(x[t], model.OutputNorm), TinyLlama.Vocab);
        }
        return logits;
    }

    private static double[] RmsNorm(double[] x, float[] weight)
    {
        double squares = 0;
        foreach (var value in x)
        {
            squares += value * value;
        }
        var scale = 1 / Math.Sqrt(squares / x.Length + TinyLlama.Epsilon);
        var result = new double[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            result[i] = x[i] * scale * weight[i];
        }
        return result;
    }

    /// <summary>y = W x with W stored one output row after another (ggml's layout: input dim innermost).</summary>
    private static double[] MatVec(float[] weights, double[] x, int outputs)
    {
        var y = new double[outputs];
        for (var o = 0; o < outputs; o++)
        {
            double sum = 0;
            for (var i = 0; i < x.Length; i++)
            {
                sum += weights[o * x.Length + i] * x[i];
            }
            y[o] = sum;
        }
        return y;
    }

    /// <summary>Rotates each head's pairs (2i, 2i+1) by position × base^(−2i/headDim).</summary>
    private static void Rope(double[] vector, int heads, int position)
    {
        for (var head = 0; head < heads; head++)
        {
            for (var i = 0; i < TinyLlama.HeadDim / 2; i++)
            {
                var theta = position * Math.Pow(TinyLlama.RopeBase, -2.0 * i / TinyLlama.HeadDim);
                var (sin, cos) = Math.SinCos(theta);
                var a = head * TinyLlama.HeadDim + 2 * i;
                var x0 = vector[a];
                var x1 = vector[a + 1];
                vector[a] = x0 * cos - x1 * sin;
                vector[a + 1] = x0 * sin + x1 * cos;
            }
        }
    }
}
