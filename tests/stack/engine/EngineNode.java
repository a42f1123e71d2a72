// Starts one OpenSearch node in this JVM with the modules given on the classpath, bound to
// 127.0.0.1 on the HTTP port given, and runs until its standard input closes (so the test that
// started it cannot leave it behind). Used by tests/stack/test_engine.py.
//   java -cp "$(cat cp.txt)" tests/stack/engine/EngineNode.java <home dir> <http port>
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public class EngineNode {
    static class PluginNode extends Node {
        PluginNode(Environment env, List<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Path home = Path.of(args[0]);
        String port = args[1];
        Files.createDirectories(home.resolve("config"));
        Settings settings = Settings.builder()
            .put("path.home", home.toString())
            .put("path.data", home.resolve("data").toString())
            .put("path.logs", home.resolve("logs").toString())
            .put("cluster.name", "oxibeat-engine-test")
            .put("node.name", "engine")
            .put("network.host", "127.0.0.1")
            .put("http.port", port)
            .put("transport.port", "0")
            .put("discovery.type", "single-node")
            .put("cluster.routing.allocation.disk.threshold_enabled", false)
            .build();
        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, java.util.Map.of(), home.resolve("config"), () -> "engine");
        List<Class<? extends Plugin>> plugins = List.of(
            org.opensearch.transport.Netty4Plugin.class,
            org.opensearch.painless.PainlessPlugin.class,
            org.opensearch.script.mustache.MustachePlugin.class,
            org.opensearch.ingest.common.IngestCommonPlugin.class,
            org.opensearch.ingest.useragent.IngestUserAgentPlugin.class,
            org.opensearch.index.mapper.MapperExtrasPlugin.class,
            org.opensearch.analysis.common.CommonAnalysisPlugin.class);
        Node node = new PluginNode(env, plugins);
        node.start();
        System.out.println("ENGINE READY");
        System.out.flush();
        while (System.in.read() >= 0) {
            // Wait for the end of standard input.
        }
        node.close();
        System.exit(0);
    }
}
