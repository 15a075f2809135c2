//! The request body as s3s reads it: in small frames, and cut when it stalls.
//!
//! s3s 0.14 checks `form_max_fields_size` against the raw bytes it has buffered while it
//! looks for the file part, and looks for a part's closing boundary in a fixed 64 KiB
//! buffer. A browser's first frame of a form POST can be hundreds of kilobytes (hyper's read
//! buffer grows per connection), which made real photos fail one upload in three. Handing
//! s3s frames of at most [`MAX_FRAME`] bytes keeps both checks to the form's fields plus one
//! small frame, whatever the client's chunking. Splitting a `Bytes` copies nothing.
//!
//! A body that sends nothing for [`Limits::body_idle`], or less than
//! [`Limits::body_min_bytes`] in any such period, ends with an error: a stalled upload holds
//! one of the few upload slots (s3s keeps a POSTed file in memory) only that long.
//!
//! [`Limits::body_idle`]: super::Limits::body_idle
//! [`Limits::body_min_bytes`]: super::Limits::body_min_bytes

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The largest frame s3s is given.
pub const MAX_FRAME: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the client sent fewer than {min} bytes in {} s", .idle.as_secs())]
    TooSlow { min: usize, idle: Duration },
    #[error(transparent)]
    Read(#[from] hyper::Error),
}

pub struct GuardedBody<B> {
    inner: B,
    /// What is left of a frame larger than [`MAX_FRAME`].
    pending: Bytes,
    idle: Duration,
    min_bytes: usize,
    /// When the current period ends, and what it has brought so far.
    deadline: Pin<Box<Sleep>>,
    received: usize,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, idle: Duration, min_bytes: usize) -> Self {
        Self {
            inner,
            pending: Bytes::new(),
            idle,
            min_bytes,
            deadline: Box::pin(tokio::time::sleep(idle)),
            received: 0,
        }
    }

    /// At the end of a period: too little came in it, or a new period starts.
    fn check_period(&mut self, cx: &mut Context<'_>) -> Result<(), BodyError> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            if self.received < self.min_bytes {
                return Err(BodyError::TooSlow {
                    min: self.min_bytes,
                    idle: self.idle,
                });
            }
            self.received = 0;
            self.deadline.as_mut().reset(Instant::now() + self.idle);
            // Register the new deadline's waker.
            let _ = self.deadline.as_mut().poll(cx);
        }
        Ok(())
    }
}

impl<B> Body for GuardedBody<B>
where
    B: Body<Data = Bytes, Error = hyper::Error> + Unpin,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            let n = this.pending.len().min(MAX_FRAME);
            return Poll::Ready(Some(Ok(Frame::data(this.pending.split_to(n)))));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                if let Err(e) = this.check_period(cx) {
                    return Poll::Ready(Some(Err(e)));
                }
                return Poll::Pending;
            }
            Poll::Ready(frame) => frame,
        };
        match frame {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    this.received = this.received.saturating_add(data.len());
                    if data.len() > MAX_FRAME {
                        this.pending = data.split_off(MAX_FRAME);
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                // Trailers pass through.
                Err(frame) => Poll::Ready(Some(Ok(frame))),
            },
            Some(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let pending = self.pending.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(pending));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(pending));
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body of given frames, then the end; `None` stalls it for good.
    struct Frames(VecDeque<Option<Bytes>>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = hyper::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            match self.0.front() {
                Some(None) => Poll::Pending,
                Some(Some(_)) => {
                    Poll::Ready(self.0.pop_front().flatten().map(|b| Ok(Frame::data(b))))
                }
                None => Poll::Ready(None),
            }
        }
    }

    async fn collect(mut body: GuardedBody<Frames>) -> Result<Vec<usize>, BodyError> {
        let mut sizes = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            sizes.push(frame?.into_data().map(|d| d.len()).unwrap_or(0));
        }
        Ok(sizes)
    }

    #[tokio::test]
    async fn large_frames_are_split_without_losing_a_byte() {
        let frames = Frames(VecDeque::from([
            Some(Bytes::from(vec![1u8; 40_000])),
            Some(Bytes::from(vec![2u8; 10])),
        ]));
        let sizes = collect(GuardedBody::new(frames, Duration::from_secs(5), 1))
            .await
            .unwrap();
        assert_eq!(
            sizes,
            vec![MAX_FRAME, MAX_FRAME, 40_000 - 2 * MAX_FRAME, 10]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_ends_with_an_error() {
        let frames = Frames(VecDeque::from([Some(Bytes::from_static(b"abc")), None]));
        let err = collect(GuardedBody::new(frames, Duration::from_secs(5), 1))
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::TooSlow { .. }), "{err}");
    }
}
