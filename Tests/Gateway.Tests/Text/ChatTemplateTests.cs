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
}
