//! Handing one message to librdkafka without what rdkafka's `BaseProducer::send` costs per
//! message on top of librdkafka's own work: a `CString` of the topic name (an allocation and a
//! copy), and librdkafka then looking the topic up by that name under its client-wide write
//! lock (`rd_kafka_topic_new0`, with a reference taken and dropped). Here each topic gets one
//! librdkafka topic handle, made on first use, and messages go to `rd_kafka_produceva` with
//! that handle (`RD_KAFKA_VTYPE_RKT`). Everything else is as in `send`: the payload is copied
//! (`RD_KAFKA_MSG_F_COPY`), the opaque comes back in the delivery callback, the timestamp
//! and headers are the message's, and errors carry librdkafka's codes.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::IntoOpaque;

/// What `Topics::produce` sends, besides the topic and the opaque.
pub(super) struct Message<'a> {
    /// A partition, or `rdkafka::producer::PARTITION_UA` for librdkafka's partitioner.
    pub partition: i32,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// Milliseconds since the epoch; `None`: the time librdkafka takes the message.
    pub timestamp: Option<i64>,
}

/// A producer with the librdkafka topic handles its messages are produced on. The handles are
/// destroyed before the producer can be: the producer is held here (fields drop in order).
pub(super) struct Topics<C: ProducerContext + 'static> {
    handles: HashMap<Box<str>, NonNull<rd::rd_kafka_topic_t>>,
    /// The last topic produced to, so one-topic outputs skip the map.
    last: Option<(Box<str>, NonNull<rd::rd_kafka_topic_t>)>,
    /// `headers`, added to every message; names cannot hold NUL (checked in the config).
    headers: Vec<(CString, Vec<u8>)>,
    /// The argument list of `rd_kafka_produceva`, kept to reuse its allocation.
    args: Vec<rd::rd_kafka_vu_t>,
    producer: Arc<ThreadedProducer<C>>,
}

// SAFETY: librdkafka topic handles may be used and destroyed from any thread (rdkafka's own
// `NativeTopic` is `Send` and `Sync` for this reason); the rest is owned data, and a shared
// reference reaches only the producer.
unsafe impl<C: ProducerContext + 'static> Send for Topics<C> {}
unsafe impl<C: ProducerContext + 'static> Sync for Topics<C> {}

impl<C: ProducerContext + 'static> Topics<C> {
    pub fn new(producer: Arc<ThreadedProducer<C>>, headers: &[super::config::Header]) -> Self {
        Topics {
            handles: HashMap::new(),
            last: None,
            headers: headers
                .iter()
                .filter_map(|h| Some((CString::new(h.key.as_str()).ok()?, h.value.clone().into())))
                .collect(),
            args: Vec::new(),
            producer,
        }
    }

    pub fn producer(&self) -> &Arc<ThreadedProducer<C>> {
        &self.producer
    }

    /// The handle of `topic`, made on first use.
    fn handle(&mut self, topic: &str) -> Result<NonNull<rd::rd_kafka_topic_t>, RdError> {
        if let Some((name, h)) = &self.last {
            if **name == *topic {
                return Ok(*h);
            }
        }
        let h = match self.handles.get(topic) {
            Some(h) => *h,
            None => {
                let name = CString::new(topic)
                    .map_err(|_| RdError::MessageProduction(RDKafkaErrorCode::InvalidTopic))?;
                // SAFETY: a live client and a NUL-terminated name; NULL conf means the
                // client's default topic configuration, as producing by name uses.
                let raw = unsafe {
                    rd::rd_kafka_topic_new(
                        self.producer.client().native_ptr(),
                        name.as_ptr(),
                        std::ptr::null_mut(),
                    )
                };
                let h = NonNull::new(raw).ok_or_else(|| {
                    // SAFETY: reads librdkafka's thread-local last error.
                    let code = unsafe { rd::rd_kafka_last_error() };
                    RdError::MessageProduction(code.into())
                })?;
                self.handles.insert(topic.into(), h);
                h
            }
        };
        self.last = Some((topic.into(), h));
        Ok(h)
    }

    /// Hand `m` to librdkafka, which copies it. On error the opaque comes back.
    pub fn produce(
        &mut self,
        topic: &str,
        m: &Message<'_>,
        opaque: C::DeliveryOpaque,
    ) -> Result<(), (RdError, C::DeliveryOpaque)> {
        let rkt = match self.handle(topic) {
            Ok(h) => h,
            Err(e) => return Err((e, opaque)),
        };
        let opaque = opaque.into_ptr();
        let arg = |vtype, u| rd::rd_kafka_vu_t { vtype, u };
        use rd::rd_kafka_vtype_t as V;
        use rd::rd_kafka_vu_s__bindgen_ty_1 as U;
        let mem = |b: &[u8]| U {
            mem: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_1 {
                ptr: b.as_ptr() as *mut c_void,
                size: b.len(),
            },
        };
        let args = &mut self.args;
        args.clear();
        args.push(arg(V::RD_KAFKA_VTYPE_RKT, U { rkt: rkt.as_ptr() }));
        args.push(arg(V::RD_KAFKA_VTYPE_PARTITION, U { i32_: m.partition }));
        args.push(arg(
            V::RD_KAFKA_VTYPE_MSGFLAGS,
            U {
                i: rd::RD_KAFKA_MSG_F_COPY,
            },
        ));
        args.push(arg(V::RD_KAFKA_VTYPE_VALUE, mem(m.payload)));
        if let Some(k) = m.key {
            args.push(arg(V::RD_KAFKA_VTYPE_KEY, mem(k)));
        }
        args.push(arg(V::RD_KAFKA_VTYPE_OPAQUE, U { ptr: opaque }));
        if let Some(ts) = m.timestamp {
            args.push(arg(V::RD_KAFKA_VTYPE_TIMESTAMP, U { i64_: ts }));
        }
        for (name, value) in &self.headers {
            args.push(arg(
                V::RD_KAFKA_VTYPE_HEADER,
                U {
                    header: rd::rd_kafka_vu_s__bindgen_ty_1__bindgen_ty_2 {
                        name: name.as_ptr(),
                        val: value.as_ptr() as *const c_void,
                        size: value.len() as isize,
                    },
                },
            ));
        }
        // SAFETY: every pointer in `args` outlives the call (librdkafka copies the payload,
        // key and headers: RD_KAFKA_MSG_F_COPY), the topic handle belongs to this client.
        let err = unsafe {
            rd::rd_kafka_produceva(
                self.producer.client().native_ptr(),
                args.as_ptr(),
                args.len(),
            )
        };
        if err.is_null() {
            return Ok(());
        }
        // SAFETY: `err` is the error librdkafka returned, destroyed once here; on error the
        // message was not taken, so the opaque is still ours.
        let (code, opaque) = unsafe {
            let code = rd::rd_kafka_error_code(err);
            rd::rd_kafka_error_destroy(err);
            (code, C::DeliveryOpaque::from_ptr(opaque))
        };
        Err((RdError::MessageProduction(code.into()), opaque))
    }
}

impl<C: ProducerContext + 'static> Drop for Topics<C> {
    fn drop(&mut self) {
        self.last = None;
        for (_, h) in self.handles.drain() {
            // SAFETY: made by rd_kafka_topic_new on this producer, which is still alive.
            unsafe { rd::rd_kafka_topic_destroy(h.as_ptr()) };
        }
    }
}
