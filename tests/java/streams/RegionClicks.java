import java.io.FileInputStream;
import java.io.IOException;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * A stateful Kafka Streams application for tests/test_streams.py: a KTable of user → region read
 * from the compacted topic "user-regions", a KStream of user → clicks (a long) from "user-clicks",
 * joined (stream–table inner join: each click takes the user's region at that time), re-keyed by
 * region (a repartition topic) and summed per region into a table whose every update goes to
 * "clicks-per-region" (region → total, a long).
 *
 * <p>Like Apache Kafka's WordCountDemo it takes an optional properties file (the Streams settings)
 * and runs until SIGTERM, when it closes the Streams instance.
 */
public final class RegionClicks {
    public static final String USERS = "user-regions";
    public static final String CLICKS = "user-clicks";
    public static final String OUTPUT = "clicks-per-region";

    static void build(final StreamsBuilder builder) {
        final KTable<String, String> regions =
            builder.table(USERS, Consumed.with(Serdes.String(), Serdes.String()));
        final KStream<String, Long> clicks =
            builder.stream(CLICKS, Consumed.with(Serdes.String(), Serdes.Long()));
        clicks
            // "region\tclicks" for every click of a user whose region is known
            .join(regions, (n, region) -> region + "\t" + n)
            .groupBy((user, joined) -> joined.substring(0, joined.indexOf('\t')),
                     Grouped.with("by-region", Serdes.String(), Serdes.String()))
            .aggregate(() -> 0L,
                       (region, joined, total) -> total + Long.parseLong(joined.substring(joined.indexOf('\t') + 1)),
                       Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("region-totals")
                           .withKeySerde(Serdes.String())
                           .withValueSerde(Serdes.Long()))
            .toStream()
            .to(OUTPUT, Produced.with(Serdes.String(), Serdes.Long()));
    }

    public static void main(final String[] args) throws IOException {
        final Properties props = new Properties();
        if (args.length > 0) {
            try (FileInputStream in = new FileInputStream(args[0])) {
                props.load(in);
            }
        }
        props.putIfAbsent(StreamsConfig.APPLICATION_ID_CONFIG, "region-clicks");
        props.putIfAbsent(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "localhost:9092");
        props.putIfAbsent(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

        final StreamsBuilder builder = new StreamsBuilder();
        build(builder);
        final KafkaStreams streams = new KafkaStreams(builder.build(), props);
        final CountDownLatch latch = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread("region-clicks-shutdown-hook") {
            @Override
            public void run() {
                streams.close();
                latch.countDown();
            }
        });
        try {
            streams.start();
            latch.await();
        } catch (final Throwable e) {
            System.exit(1);
        }
        System.exit(0);
    }
}
