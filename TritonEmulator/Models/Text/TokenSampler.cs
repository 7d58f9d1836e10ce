namespace TritonEmulator.Models.Text;

/// <summary>Sampling settings of one row (FasterTransformer's runtime inputs).</summary>
internal readonly record struct SamplingSettings(uint TopK, float TopP, float Temperature, float RepetitionPenalty)
{
    /// <summary>Subtracted once from the logit of every token already generated (TensorRT-LLM's, additive like OpenAI's).</summary>
    public float PresencePenalty { get; init; }

    /// <summary>Subtracted from a token's logit once per time it was generated.</summary>
    public float FrequencyPenalty { get; init; }

    /// <summary>FasterTransformer samples greedily when both top-k and top-p are 0; a near-zero temperature is greedy too.</summary>
    public bool IsGreedy => (TopK == 0 && TopP <= 0f) || TopK == 1 || Temperature < 1e-4f;
}

/// <summary>
/// Samples the next token of one sequence from the token model: repetition penalty, bad words,
/// temperature, top-k and top-p, with a seeded generator. Reuses its buffers between tokens.
/// </summary>
internal sealed class TokenSampler(TokenLanguageModel model, SamplingSettings settings, ulong seed, IReadOnlyList<int[]> badWords)
{
    private const double UnigramBackoff = 20.0;

    private SplitMix64 _random = new(seed);
    private int[] _tokens = new int[64];
    private double[] _scores = new double[64];

    /// <summary>Chooses the next token after <paramref name="sequence"/>; <paramref name="logProbability"/> is its log-probability.</summary>
    public int Next(ReadOnlySpan<uint> sequence, out float logProbability) => Next(sequence, sequence.Length, -1, out logProbability);

    /// <summary>
    /// Chooses the next token after <paramref name="sequence"/>, whose generated tokens start at
    /// <paramref name="generatedFrom"/> (presence and frequency penalties count those); the token
    /// <paramref name="suppressed"/> (an end id before <c>min_tokens</c>, or -1) is never chosen.
    /// </summary>
    public int Next(ReadOnlySpan<uint> sequence, int generatedFrom, int suppressed, out float logProbability)
    {
        var generated = sequence[Math.Min(generatedFrom, sequence.Length)..];
        var count = Fill(model.Next(sequence), sequence, generated, suppressed, 0, 0);
        if (count == 0)
        {
            count = Fill(model.Unigrams, sequence, generated, suppressed, 0, 0);
        }
        else if (settings.PresencePenalty != 0f || settings.FrequencyPenalty != 0f)
        {
            // The continuations seen after this context may all be penalised: back off to every token
            // of the corpus (a unigram logit far below), as a real model's full vocabulary would.
            count = Fill(model.Unigrams, sequence, generated, suppressed, count, UnigramBackoff);
        }
        if (count == 0)
        {
            logProbability = 0f;
            return TokenLanguageModel.EndOfText;
        }
        // Scores are logits (log counts after the penalty); order: best first, ties by token id.
        SortDescending(count);
        if (settings.IsGreedy)
        {
            logProbability = (float)LogSoftmaxOfFirst(count, 1.0);
            return _tokens[0];
        }
        var temperature = settings.Temperature <= 0f ? 1.0 : settings.Temperature;
        var max = _scores[0];
        double sum = 0;
        for (var i = 0; i < count; i++)
        {
            _scores[i] = Math.Exp((_scores[i] - max) / temperature);
            sum += _scores[i];
        }
        var keep = count;
        if (settings.TopK > 0 && settings.TopK < keep)
        {
            keep = (int)settings.TopK;
        }
        if (settings.TopP > 0f && settings.TopP < 1f)
        {
            double cumulative = 0;
            for (var i = 0; i < keep; i++)
            {
                cumulative += _scores[i] / sum;
                if (cumulative >= settings.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }
        double kept = 0;
        for (var i = 0; i < keep; i++)
        {
            kept += _scores[i];
        }
        var target = _random.NextDouble() * kept;
        var chosen = keep - 1;
        double running = 0;
        for (var i = 0; i < keep; i++)
        {
            running += _scores[i];
            if (target < running)
            {
                chosen = i;
                break;
            }
        }
        logProbability = (float)Math.Log(_scores[chosen] / kept);
        return _tokens[chosen];
    }

    /// <summary>Appends the candidates after the first <paramref name="known"/> (skipping those already there), their logits lowered by <paramref name="backoff"/>.</summary>
    private int Fill(TokenLanguageModel.Candidates candidates, ReadOnlySpan<uint> sequence, ReadOnlySpan<uint> generated, int suppressed, int known, double backoff)
    {
        if (_tokens.Length < known + candidates.Tokens.Length)
        {
            Array.Resize(ref _tokens, known + candidates.Tokens.Length);
            Array.Resize(ref _scores, known + candidates.Tokens.Length);
        }
        var count = known;
        for (var i = 0; i < candidates.Tokens.Length; i++)
        {
            var token = candidates.Tokens[i];
            if (token == suppressed || IsBanned(token, sequence) || (known > 0 && _tokens.AsSpan(0, known).Contains(token)))
            {
                continue;
            }
            var logit = Math.Log(candidates.Counts[i]) + 1.0 - backoff;
            if (settings.RepetitionPenalty > 0f && settings.RepetitionPenalty != 1f && sequence.Contains((uint)token))
            {
                logit = logit > 0 ? logit / settings.RepetitionPenalty : logit * settings.RepetitionPenalty;
            }
            if ((settings.PresencePenalty != 0f || settings.FrequencyPenalty != 0f) && generated.Count((uint)token) is var times and > 0)
            {
                logit -= settings.PresencePenalty + settings.FrequencyPenalty * times;
            }
            _tokens[count] = token;
            _scores[count] = logit;
            count++;
        }
        return count;
    }

    private bool IsBanned(int token, ReadOnlySpan<uint> sequence)
    {
        for (var w = 0; w < badWords.Count; w++)
        {
            var word = badWords[w];
            if (word[^1] != token || word.Length - 1 > sequence.Length)
            {
                continue;
            }
            var matches = true;
            for (var i = 0; i < word.Length - 1; i++)
            {
                if (sequence[sequence.Length - (word.Length - 1) + i] != (uint)word[i])
                {
                    matches = false;
                    break;
                }
            }
            if (matches)
            {
                return true;
            }
        }
        return false;
    }

    private void SortDescending(int count)
    {
        // Insertion sort: candidate lists are short and mostly sorted already.
        for (var i = 1; i < count; i++)
        {
            var score = _scores[i];
            var token = _tokens[i];
            var j = i - 1;
            while (j >= 0 && (_scores[j] < score || (_scores[j] == score && _tokens[j] > token)))
            {
                _scores[j + 1] = _scores[j];
                _tokens[j + 1] = _tokens[j];
                j--;
            }
            _scores[j + 1] = score;
            _tokens[j + 1] = token;
        }
    }

    private double LogSoftmaxOfFirst(int count, double temperature)
    {
        var max = _scores[0];
        double sum = 0;
        for (var i = 0; i < count; i++)
        {
            sum += Math.Exp((_scores[i] - max) / temperature);
        }
        return -Math.Log(sum);
    }
}
