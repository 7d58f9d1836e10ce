using Gateway.Text;

namespace Gateway.Tests.Text;

public sealed class ChatTemplateTests
{
    [Fact]
    public void GptPlain_RendersSystemThenTurnsThenAssistantCue()
    {
        var template = ChatTemplates.Get(ChatTemplates.GptPlain);
        var prompt = template.Render([
            new ChatTurn("system", "Be terse."),
            new ChatTurn("user", "Hi"),
            new ChatTurn("assistant", "Hello."),
            new ChatTurn("user", "Weather?"),
        ]);
        Assert.Equal("Be terse.\n\nUser: Hi\nAssistant: Hello.\nUser: Weather?\nAssistant:", prompt);
        Assert.Equal(["\nUser:"], template.StopStrings);
    }

    private static readonly ChatTurn[] Conversation =
    [
        new("system", "Be terse."),
        new("user", "Hi"),
        new("assistant", "Hello."),
        new("user", "Weather?"),
    ];

    [Fact]
    public void ChatMl_RendersEveryMessageThenTheAssistantHeader()
    {
        var template = ChatTemplates.Get("chatml");
        Assert.Equal(
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n" +
            "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n",
            template.Render(Conversation));
        Assert.Equal(["<|im_end|>"], template.StopStrings);
    }

    [Fact]
    public void ChatMl_DeveloperMessage_IsWrittenAsSystem()
    {
        Assert.Equal("<|im_start|>system\nRules<|im_end|>\n<|im_start|>assistant\n",
            ChatTemplates.Get("chatml").Render([new ChatTurn("developer", "Rules")]));
    }

    [Fact]
    public void Zephyr_RendersRoleTagsWithEndOfSequence()
    {
        var template = ChatTemplates.Get("zephyr");
        Assert.Equal(
            "<|system|>\nBe terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\nWeather?</s>\n<|assistant|>\n",
            template.Render(Conversation));
        Assert.Equal(["</s>", "<|user|>"], template.StopStrings);
    }

    [Fact]
    public void Llama2_PutsTheSystemPromptIntoTheFirstInstructionAndLeavesBosToTheTokenizer()
    {
        var template = ChatTemplates.Get("llama2");
        Assert.Equal(
            "[INST] <<SYS>>\nBe terse.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Weather? [/INST]",
            template.Render(Conversation));
        Assert.Equal(["</s>", "[INST]"], template.StopStrings);
    }

    [Fact]
    public void Llama2_WithoutSystem_RendersPlainInstructions()
    {
        Assert.Equal("[INST] Hi [/INST]", ChatTemplates.Get("llama2").Render([new ChatTurn("user", "Hi")]));
    }

    [Theory]
    [InlineData("ChatML")]
    [InlineData("ZEPHYR")]
    [InlineData("Llama2")]
    public void Names_AreCaseInsensitive(string name)
    {
        Assert.True(ChatTemplates.IsKnown(name));
        Assert.Equal(name.ToLowerInvariant(), ChatTemplates.Get(name).Name);
    }

    [Fact]
    public void UnknownName_IsNotKnown()
    {
        Assert.False(ChatTemplates.IsKnown("alpaca"));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChatTemplates.Get("alpaca"));
    }
}
