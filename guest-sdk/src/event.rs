//! Lambda-style event handlers: bytes in + invocation context -> bytes out or a typed error.

pub use crate::bindings::helixflow::function::types::{
    FunctionError, InvocationContext as Context,
};

impl FunctionError {
    /// A handled error with a type (e.g. `"ValidationError"`) and a human message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        FunctionError {
            error_type: error_type.into(),
            message: message.into(),
        }
    }
}

/// Export `$handler` (a `fn(Vec<u8>, Context) -> Result<Vec<u8>, FunctionError>`)
/// as this component's `helixflow:function/event-handler`.
#[macro_export]
macro_rules! event_handler {
    ($handler:path) => {
        #[doc(hidden)]
        struct __HelixflowEventHandler;

        impl $crate::bindings::exports::helixflow::function::event_handler::Guest
            for __HelixflowEventHandler
        {
            fn handle(
                event: ::std::vec::Vec<u8>,
                context: $crate::event::Context,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::event::FunctionError> {
                $handler(event, context)
            }
        }

        $crate::bindings::__export_event_function!(__HelixflowEventHandler with_types_in $crate::bindings);
    };
}
